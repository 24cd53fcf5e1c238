"""Fail closed, end to end: the shipped routes, the real DNC sample, a fake Telnyx on 127.0.0.1.

Each case gives its documented refusal or lead status, and in every run no lead whose phone is on
the sample Do-Not-Call lists ends ``succeeded`` or is saved to the database:

- a renamed column (``Phone Number``): refused before any lead runs with the ``--map`` to add;
  with ``--map 'Phone Number=phone'`` it runs;
- a tab-separated file named ``.csv``: refused with ``--delimiter``; with it, it runs;
- a Latin-1 file: ``--encoding latin-1`` reads every row;
- a missing key: ``check`` and ``run`` refuse, naming ``TELNYX_API_KEY``;
- a vendor answering 5xx for good, and its breaker open: the Telnyx gate holds the leads (exit 4,
  ``held``), nothing after the gate runs; ``run --resume`` retries them once the vendor is back;
- a typo in a condition's field: refused, with the field it was probably meant to be;
- a route run from another directory: its DNC data is found (paths resolved from the route file).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

ROOT = Path(__file__).resolve().parents[2]
FREE = ROOT / "routes" / "free-only.yaml"
HYBRID = ROOT / "routes" / "hybrid-smart.yaml"
LEADS = ROOT / "examples" / "leads.csv"
DNC = ROOT / "examples" / "dnc"
TELNYX_KEY = "KEY-fc-telnyx-1"


def waystation(*args: str, env: dict[str, str] | None = None) -> Result:
    from waystation.cli.main import cli

    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def rows(path: Path, **kw: Any) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, **kw))


def saved(db: Path, table: str = "leads") -> set[str]:
    if not db.exists():
        return set()
    with sqlite3.connect(db) as conn:
        try:
            return {r[0] for r in conn.execute(f"SELECT lead_id FROM {table}")}
        except sqlite3.OperationalError:
            return set()


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The ids of the example leads whose phone is on the sample DNC lists (a normal run)."""
    work = tmp_path_factory.mktemp("baseline")
    old = Path.cwd()
    os.chdir(work)
    try:
        res = waystation("run", str(FREE), str(LEADS), "-o", str(work / "out.csv"), "--no-progress",
                         "--checkpoint", f"sqlite:///{work / 'ck.db'}")
    finally:
        os.chdir(old)
    assert res.exit_code == 0, res.output
    out = rows(work / "out.csv")
    ids = {r["id"] for r in out if r.get("dnc_listed") == "true"}
    assert len(ids) >= 10, "the example leads include DNC-listed numbers"
    return ids


def assert_no_listed_lead_passed(listed: set[str], out: Path, db: Path, table: str = "leads") -> None:
    for r in rows(out):
        if r["id"] in listed:
            assert r["_status"] != "succeeded", r
    assert not (saved(db, table) & listed), "a DNC-listed lead was saved"


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from a directory that is not the repository (paths must not depend on the cwd)."""
    work = tmp_path / "somewhere-else"
    work.mkdir()
    monkeypatch.chdir(work)
    for var in ("TELNYX_API_KEY", "RAPIDAPI_KEY"):
        monkeypatch.delenv(var, raising=False)
    return work


def run_free(work: Path, inp: Path, *extra: str) -> Result:
    return waystation("run", str(FREE), str(inp), "-o", str(work / "out.csv"), "--no-progress",
                      "--checkpoint", f"sqlite:///{work / 'ck.db'}", *extra)


def test_a_route_run_from_another_directory_finds_its_dnc_data(elsewhere: Path, listed: set[str]) -> None:
    res = run_free(elsewhere, LEADS)
    assert res.exit_code == 0, res.output
    out = rows(elsewhere / "out.csv")
    failed = [r for r in out if r["_status"] == "failed"]
    assert all("missing_requirements" in r["_reason"] for r in failed), failed[:3]  # only leads with no phone
    assert sum(1 for r in out if r.get("dnc_listed") == "true") == len(listed)
    assert_no_listed_lead_passed(listed, elsewhere / "out.csv", elsewhere / "out" / "leads.db")


def test_a_renamed_column_is_refused_with_the_map_that_fixes_it(elsewhere: Path, listed: set[str]) -> None:
    text = LEADS.read_text(encoding="utf-8").splitlines()
    text[0] = text[0].replace("phone", "Phone Number")
    inp = elsewhere / "renamed.csv"
    inp.write_text("\n".join(text) + "\n", encoding="utf-8")
    for args in (("--dry-run",), ()):
        res = run_free(elsewhere, inp, *args)
        assert res.exit_code == 2, res.output
        assert "step 'DNCScrubStation' requires 'phone'" in res.output
        assert "'Phone Number' looks like 'phone': add --map 'Phone Number=phone'" in res.output
    assert not (elsewhere / "out.csv").exists()  # refused before any lead ran
    res = run_free(elsewhere, inp, "--map", "Phone Number=phone")
    assert res.exit_code == 0, res.output
    assert_no_listed_lead_passed(listed, elsewhere / "out.csv", elsewhere / "out" / "leads.db")
    assert sum(1 for r in rows(elsewhere / "out.csv") if r.get("dnc_listed") == "true") == len(listed)


def test_a_tab_separated_file_named_csv_is_refused_then_read_with_delimiter(elsewhere: Path,
                                                                           listed: set[str]) -> None:
    inp = elsewhere / "leads.csv"
    with LEADS.open(newline="", encoding="utf-8") as src, inp.open("w", newline="", encoding="utf-8") as dst:
        csv.writer(dst, delimiter="\t").writerows(csv.reader(src))
    res = run_free(elsewhere, inp)
    assert res.exit_code == 2, res.output
    assert "tab-separated" in res.output and "--delimiter '\\t'" in res.output
    res = run_free(elsewhere, inp, "--delimiter", "\\t")
    assert res.exit_code == 0, res.output
    assert_no_listed_lead_passed(listed, elsewhere / "out.csv", elsewhere / "out" / "leads.db")


def test_a_latin1_file_is_read_with_encoding(elsewhere: Path, listed: set[str]) -> None:
    lines = LEADS.read_text(encoding="utf-8").splitlines()
    for i in range(1, len(lines), 10):  # accented names, as CRM exports have them
        lines[i] = lines[i].replace(",", ",Jos\u00e9 ", 1) if "," in lines[i] else lines[i]
    inp = elsewhere / "crm.csv"
    inp.write_bytes(("\n".join(lines) + "\n").encode("latin-1", "replace"))
    res = run_free(elsewhere, inp)
    assert res.exit_code == 0, res.output
    rejected = [r for r in rows(elsewhere / "out.csv") if r["_status"] == "rejected"]
    assert rejected and "try --encoding latin-1" in rejected[0]["_reason"]
    (elsewhere / "out.csv").unlink()
    res = waystation("run", str(FREE), str(inp), "-o", str(elsewhere / "out2.csv"), "--no-progress",
                     "--checkpoint", f"sqlite:///{elsewhere / 'ck2.db'}", "--encoding", "latin-1")
    assert res.exit_code == 0, res.output
    out = rows(elsewhere / "out2.csv")
    assert not [r for r in out if r["_status"] == "rejected"]
    assert any("Jos\u00e9" in (r.get("first_name", "") + r.get("full_name", "")) for r in out)
    assert_no_listed_lead_passed(listed, elsewhere / "out2.csv", elsewhere / "out" / "leads.db")


def test_a_missing_key_is_refused_up_front_naming_the_variable(elsewhere: Path) -> None:
    res = waystation("check", str(HYBRID))
    assert res.exit_code == 2, res.output
    assert "TELNYX_API_KEY" in res.output and "RAPIDAPI_KEY" in res.output
    res = waystation("run", str(HYBRID), str(LEADS), "-o", str(elsewhere / "out.csv"), "--no-progress",
                     "--checkpoint", f"sqlite:///{elsewhere / 'ck.db'}")
    assert res.exit_code == 2, res.output
    assert "set the environment variable TELNYX_API_KEY" in res.output
    assert not (elsewhere / "out.csv").exists()


def test_a_typo_in_a_condition_field_is_refused(elsewhere: Path) -> None:
    route = elsewhere / "typo.yaml"
    route.write_text(FREE.read_text().replace('condition: "zipcode exists"', 'condition: "zipcod exists"')
                     .replace("../examples/dnc", str(DNC)))
    res = waystation("check", str(route))
    assert res.exit_code == 0, res.output  # no input known: a warning
    assert "'zipcod'" in res.output and "did you mean 'zipcode'" in res.output
    res = waystation("run", str(route), str(LEADS), "-o", str(elsewhere / "out.csv"), "--dry-run")
    assert res.exit_code == 2, res.output
    assert "names field 'zipcod'" in res.output and "did you mean 'zipcode'" in res.output


# --------------------------------------------------------------------------- a failing Telnyx


class Telnyx:
    """A fake Telnyx Number Lookup: ``status`` 503 for every lookup, or a mobile line (200)."""

    def __init__(self) -> None:
        self.server = HTTPServer(host="127.0.0.1", port=0)
        self.status = 503
        self.calls = 0

    def handler(self, request: Request) -> Response:
        self.calls += 1
        number = request.path.rsplit("/", 1)[-1]
        if self.status != 200:
            return Response(json.dumps({"errors": [{"code": "10007", "title": "Unexpected error"}]}),
                            status=self.status, content_type="application/json")
        body = {"data": {"record_type": "number_lookup", "phone_number": number, "country_code": "US",
                         "national_format": number, "fraud": None, "caller_name": None,
                         "carrier": {"name": "C", "normalized_carrier": "C", "type": "mobile",
                                     "mobile_country_code": "310", "mobile_network_code": 260, "error_code": None},
                         "portability": None, "valid_number": True}}
        return Response(json.dumps(body), content_type="application/json")


@pytest.fixture
def telnyx() -> Iterator[Telnyx]:
    t = Telnyx()
    t.server.start()
    t.server.expect_request(re.compile(r"^/v2/number_lookup/.+$")).respond_with_handler(t.handler)
    yield t
    t.server.clear()
    t.server.stop()


def test_a_gate_vendor_down_for_good_holds_the_leads_and_resume_retries_them(
        elsewhere: Path, telnyx: Telnyx, listed: set[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELNYX_API_KEY", TELNYX_KEY)
    url = telnyx.server.url_for("/v2")
    route = elsewhere / "gated.yaml"
    route.write_text(
        "name: GATED\nsteps:\n  - station: IdentityResolutionStation\n"
        f"  - station: TelnyxGatekeepStation\n    settings: {{base_url: '{url}', allow_hosts: ['127.0.0.1']}}\n"
        "    retry: {max_attempts: 2, base_delay: 0, jitter: 0}\n"
        "    breaker: {failure_threshold: 3, reset_after: 3600}\n"
        "    rate_limit: {per_second: 1000, concurrent: 4}\n"
        "  - station: DNCScrubStation\n    settings:\n"
        f"      store: {elsewhere / 'dnc.sqlite'}\n      federal_files: [{DNC / 'federal'}]\n"
        f"      change_files: [{DNC / 'changes'}]\n      internal_files: [{DNC / 'internal.txt'}]\n"
        f"      litigator_files: [{DNC / 'litigators.txt'}]\n"
        "  - station: DatabaseSaveStation\n"
        f"    settings: {{url: 'sqlite:///{elsewhere / 'saved.db'}', table: leads}}\n")
    out, db = elsewhere / "out.csv", elsewhere / "saved.db"
    args = ["run", str(route), str(LEADS), "-o", str(out), "--no-progress", "--concurrency", "4",
            "--checkpoint", f"sqlite:///{elsewhere / 'ck.db'}", "--run-id", "gated-1",
            "--report", str(elsewhere / "report.json")]
    res = waystation(*args)
    assert res.exit_code == 4, res.output  # --fail-on held>0 (the default)
    assert "--fail-on: held" in res.output and "--resume gated-1" in res.output
    out_rows = rows(out)
    held = [r for r in out_rows if r["_status"] == "held"]
    assert held and not [r for r in out_rows if r["_status"] == "succeeded"]
    assert all(r["_reason"].startswith("gate TelnyxGatekeepStation did not pass") for r in held)
    assert not saved(db), "nothing passed the gate, nothing was saved"
    report = json.loads((elsewhere / "report.json").read_text())
    causes = report["causes"]
    assert causes.get("gate TelnyxGatekeepStation: server_error", 0) >= 1
    assert causes.get("gate TelnyxGatekeepStation: breaker_open", 0) >= 1  # the breaker opened
    assert report["stations"][2]["runs"] == 0  # DNC never ran for a held lead
    rejects = (elsewhere / "out.rejects.jsonl").read_text().splitlines()
    assert len(rejects) >= len(held)
    # the vendor is back: the same run resumed retries the held leads; none is bought twice
    telnyx.status = 200
    res = waystation("run", str(route), str(LEADS), "-o", str(out), "--no-progress", "--concurrency", "4",
                     "--checkpoint", f"sqlite:///{elsewhere / 'ck.db'}", "--resume", "gated-1")
    assert res.exit_code == 0, res.output
    out_rows = rows(out)
    assert not [r for r in out_rows if r["_status"] == "held"]
    assert [r for r in out_rows if r["_status"] == "succeeded"]
    assert_no_listed_lead_passed(listed, out, db)
    assert len(out_rows) == len(rows(LEADS))


def test_the_shipped_routes_still_compile() -> None:
    shutil.which("true")  # (no service needed)
    for route in (FREE, HYBRID):
        res = waystation("check", str(route), env={"TELNYX_API_KEY": "x", "RAPIDAPI_KEY": "y"})
        assert res.exit_code == 0, res.output
