"""Evidence from the DNC scrub, the dial verdict and `waystation dnc status`, with the shipped DNC
sample (examples/dnc) dated fresh or 40 days old."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from waystation.dial import evidence as ev
from waystation.testing import run_route
from waystation_dnc import plugin
from waystation_dnc.cli import dnc
from waystation_dnc.rnd import ReassignedNumbersStation
from waystation_dnc.stations import DNCScrubStation
from waystation_dnc.verdict import DialEligibilityStation

SAMPLE = Path(__file__).resolve().parents[3] / "examples" / "dnc"
STATIONS = [DNCScrubStation, DialEligibilityStation, ReassignedNumbersStation]


def sample(tmp_path: Path, age_days: float) -> Path:
    """The shipped sample registry copied to ``tmp_path`` with every file dated ``age_days`` ago."""
    dest = tmp_path / "dnc"
    shutil.copytree(SAMPLE, dest)
    when = time.time() - age_days * 86400
    for p in dest.rglob("*"):
        if p.is_file():
            os.utime(p, (when, when))
    return dest


def route(tmp_path: Path, reg: Path, verdict: str = "wireless: ignore") -> str:
    return f"""
name: dial
input: [id, phone, phone_timezone, state, consent_date, dial_evidence]
steps:
  - station: DNCScrubStation
    settings:
      store: {tmp_path / 'state' / 'dnc.sqlite'}
      federal_files: [{reg / 'federal'}]
      change_files: [{reg / 'changes'}]
      internal_files: [{reg / 'internal.txt'}]
      litigator_files: [{reg / 'litigators.txt'}]
      on_listed: continue
  - station: DialEligibilityStation
    settings:
      policy: tsr-2025
      {verdict}
"""


LEADS = [
    {"id": "clean", "phone": "+12125550101", "phone_timezone": "America/New_York", "state": "NY"},
    {"id": "federal", "phone": "+12125550114", "phone_timezone": "America/New_York", "state": "NY"},
    {"id": "internal", "phone": "+13055550190", "phone_timezone": "America/New_York", "state": "FL"},
    {"id": "unloaded", "phone": "+19075550100", "phone_timezone": "America/Anchorage", "state": "AK"},
]


async def run(tmp_path: Path, age_days: float, verdict: str = "wireless: ignore",
              leads: list[dict[str, Any]] = LEADS) -> dict[str, Any]:
    reg = sample(tmp_path, age_days)
    results = await run_route(route(tmp_path, reg, verdict), leads, STATIONS, plugins=[plugin])
    return {r.lead_id: r for r in results}


async def test_fresh_registry_gives_yes_no_and_unknown_with_evidence(tmp_path: Path) -> None:
    r = await run(tmp_path, age_days=2)
    clean = r["clean"].data
    assert clean["dial_eligible"] == "yes" and clean["dial_reasons"] == []
    items = {e.check: e for e in ev.items(clean["dial_evidence"])}
    assert set(items) == {"federal_dnc", "internal_dnc", "litigator", "calling_window"}
    fed = items["federal_dnc"]
    assert fed.result == "not_listed" and fed.phone == "2125550101" and fed.source["file"] == "212.txt"
    # federal evidence expires 31 days after the date of the data (the file's date), not of the check
    assert ev.parse_time(fed.expires_at) - ev.parse_time(fed.source["date"]) == ev.expires_after(
        fed.source["date"], 31) - ev.parse_time(fed.source["date"])
    assert clean["dial_window_zone"] == "America/New_York" and clean["dial_window_start_utc"]
    assert r["federal"].data["dial_eligible"] == "no"
    assert r["federal"].data["dial_reasons"] == ["listed:federal_dnc"]
    assert r["federal"].status == "stopped"  # on_ineligible: skip_remaining
    assert r["internal"].data["dial_eligible"] == "no"
    assert r["internal"].data["dial_reasons"] == ["listed:internal_dnc"]
    assert r["internal"].data["dial_max_calls_24h"] == 3  # Florida
    assert r["unloaded"].data["dial_eligible"] == "unknown"
    assert r["unloaded"].data["dial_reasons"] == ["not_loaded:federal_dnc"]


async def test_registry_dated_40_days_ago_makes_every_verdict_unknown(tmp_path: Path) -> None:
    leads = [lead for lead in LEADS if lead["id"] != "internal"]
    r = await run(tmp_path, age_days=40, leads=leads)
    for lead_id, res in r.items():
        assert res.data["dial_eligible"] == "unknown", lead_id
        assert "expired:federal_dnc" in res.data["dial_reasons"] or lead_id == "unloaded"
    assert r["federal"].data["dial_eligible"] == "unknown"  # a stale listing is no evidence either way


async def test_wireless_without_consent_is_unknown_under_consent_required(tmp_path: Path) -> None:
    line = ev.make("line_type", "wireless", station="TelnyxGatekeepStation", phone="+12125550101",
                   expires_at=ev.expires_after(ev.utcnow(), 31), vendor="telnyx", request_id="req-1")
    leads = [{**LEADS[0], "dial_evidence": [line]}, {**LEADS[0], "id": "consented", "dial_evidence": [line],
                                                    "consent_date": "2026-01-15"}]
    r = await run(tmp_path, age_days=1, verdict="wireless: consent-required", leads=leads)
    assert r["clean"].data["dial_eligible"] == "unknown"
    assert r["clean"].data["dial_reasons"] == ["wireless_without_consent"]
    assert r["consented"].data["dial_eligible"] == "yes"
    # the line-type item travelled through the DNC step and the verdict untouched
    assert {e.check for e in ev.items(r["consented"].data["dial_evidence"])} >= {"line_type", "federal_dnc"}


def test_dnc_status_warns_when_the_files_are_older_than_31_days(tmp_path: Path) -> None:
    reg = sample(tmp_path, age_days=40)
    store = tmp_path / "s.sqlite"
    runner = CliRunner()
    res = runner.invoke(dnc, ["import", *map(str, sorted((reg / "federal").iterdir())), "--store", str(store)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(dnc, ["status", "--store", str(store)])
    assert "warning" in res.output and "40 days old" in res.output and "31" in res.output
    fresh = sample(tmp_path / "fresh", age_days=3)
    store2 = tmp_path / "s2.sqlite"
    runner.invoke(dnc, ["import", *map(str, sorted((fresh / "federal").iterdir())), "--store", str(store2)])
    assert "warning" not in runner.invoke(dnc, ["status", "--store", str(store2)]).output


def test_unknown_check_or_policy_in_settings_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        DialEligibilityStation.Settings(also_require=["horoscope"])
    with pytest.raises(ValidationError):
        DialEligibilityStation.Settings(policy="anything-goes")
