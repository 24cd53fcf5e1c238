"""``routes/dial-ready.yaml`` end to end: identity, a skip trace, Telnyx, the DNC scrub on the shipped
sample registry, the FCC reassigned-numbers check, the dial verdict and the SQL save, with every
vendor a real HTTP server on 127.0.0.1 (the skip-trace API and Telnyx as in test_hybrid.py, the RND
in its modelled shape).

Checked: verdicts and reasons (internal list → no; wireless without consent → unknown; reassigned
→ no), evidence and verdict in the output file, the report and the database; a registry dated 40
days ago makes every verdict unknown and the export refuse (the save refuses, the run exits 1);
a suppressed phone causes zero vendor calls across the whole route, also under a new lead id.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_hybrid as hybrid
import yaml
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from waystation.cli.main import cli
from waystation.dial import evidence as ev
from werkzeug import Request, Response

ROOT = Path(__file__).resolve().parents[2]
ROUTE = ROOT / "routes" / "dial-ready.yaml"
RND_TOKEN = "rnd-token-it-77a1"
RND_PRICE = 0.005
COLUMNS = ["id", "first_name", "last_name", "city", "state", "zipcode", "phone", "email", "consent_date"]

#: RND answers per number (every other number: "no").
RND_ANSWERS = {"2125550188": "yes"}

LEADS = [
    # a landline, on no list: yes (no consent needed for a landline)
    {"id": "D1", "first_name": "Ada", "last_name": "Byron", "state": "NY", "phone": "(212) 555-0101"},
    # on the internal do-not-call list: no
    {"id": "D2", "first_name": "Bo", "last_name": "Chen", "state": "CA", "phone": "(415) 555-0181",
     "consent_date": "2025-05-01"},
    # a mobile without a consent date: unknown (wireless_without_consent)
    {"id": "D3", "first_name": "Cy", "last_name": "Dunn", "state": "IL", "phone": "(312) 555-0155"},
    # a mobile with consent, but the RND says the number was disconnected since: no (reassigned)
    {"id": "D4", "first_name": "Di", "last_name": "Eve", "state": "NY", "phone": "(212) 555-0188",
     "consent_date": "2025-02-01"},
    # a mobile with consent, RND "no": yes, in Florida's window
    {"id": "D5", "first_name": "Ed", "last_name": "Fox", "state": "FL", "phone": "(305) 555-0133",
     "consent_date": "2025-03-01"},
]


class RND:
    """The fake Reassigned Numbers Database."""

    def __init__(self) -> None:
        self.server = HTTPServer(host="127.0.0.1", port=0)

    def start(self) -> None:
        self.server.start()
        self.server.expect_request("/v1/query", method="POST").respond_with_handler(self._query)

    def _query(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {RND_TOKEN}":
            return Response("{}", status=401, content_type="application/json")
        body = json.loads(request.get_data())
        answer = RND_ANSWERS.get(body["tn"], "no")
        return Response(json.dumps({**body, "result": answer, "requestId": f"q-{body['tn']}"}),
                        content_type="application/json")

    def queries(self) -> list[dict[str, Any]]:
        return [json.loads(req.get_data()) for req, _ in self.server.log]


@pytest.fixture
def vendors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[hybrid.Vendors, RND]]:
    hybrid._require_plugins()
    monkeypatch.setenv("TELNYX_API_KEY", hybrid.TELNYX_KEY)
    monkeypatch.setenv("RAPIDAPI_KEY", hybrid.RAPIDAPI_KEY)
    monkeypatch.setenv("FCC_RND_TOKEN", RND_TOKEN)
    monkeypatch.setenv("WAYSTATION_SUPPRESS_LEDGER", str(tmp_path / "ledger" / "suppress.sqlite"))
    monkeypatch.delenv("WAYSTATION_SUPPRESS_SECRET", raising=False)
    monkeypatch.setitem(hybrid.TELNYX_TYPES, "+12125550101", "fixed line")
    v, rnd = hybrid.Vendors(), RND()
    v.start()
    rnd.start()
    try:
        yield v, rnd
    finally:
        v.stop()
        rnd.server.clear()
        rnd.server.stop()


def registry(tmp_path: Path, age_days: float) -> Path:
    """The shipped DNC sample, every file dated ``age_days`` ago."""
    dest = tmp_path / f"dnc-{age_days:g}"
    shutil.copytree(ROOT / "examples" / "dnc", dest)
    when = time.time() - age_days * 86400
    for p in dest.rglob("*"):
        if p.is_file():
            os.utime(p, (when, when))
    return dest


def route_copy(tmp_path: Path, vendors: hybrid.Vendors, rnd: RND, reg: Path) -> Path:
    spec = yaml.safe_load(ROUTE.read_text(encoding="utf-8"))
    by = {s["station"]: s for s in spec["steps"]}
    fast = {"per_second": 1000}
    # the fake vendors are plain-http servers on 127.0.0.1: the route allows the keys to go there
    by["SkipTracingStation"]["settings"] = {"base_url": vendors.rapid.url_for("/").rstrip("/"),
                                            "allow_hosts": ["127.0.0.1"]}
    by["SkipTracingStation"]["rate_limit"] = fast
    by["TelnyxGatekeepStation"]["settings"].update({"base_url": vendors.telnyx.url_for("/v2"),
                                                   "allow_hosts": ["127.0.0.1"]})
    by["TelnyxGatekeepStation"]["rate_limit"] = fast
    by["DNCScrubStation"]["settings"].update({
        "store": str(tmp_path / f"dnc-{reg.name}.sqlite"), "federal_files": [str(reg / "federal")],
        "change_files": [str(reg / "changes")], "internal_files": [str(reg / "internal.txt")],
        "litigator_files": [str(reg / "litigators.txt")]})
    by["ReassignedNumbersStation"]["settings"].update({
        "base_url": rnd.server.url_for("/v1"), "cache": str(tmp_path / "rnd.sqlite"), "price": RND_PRICE,
        "allow_hosts": ["127.0.0.1"]})
    by["ReassignedNumbersStation"]["rate_limit"] = fast
    by["DatabaseSaveStation"]["settings"]["url"] = f"sqlite:///{tmp_path / 'leads.db'}"
    path = tmp_path / "dial-ready.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def write_leads(path: Path, leads: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for lead in leads:
            writer.writerow({c: lead.get(c, "") for c in COLUMNS})
    return path


def run(tmp_path: Path, route: Path, leads: list[dict[str, str]], name: str) -> tuple[Any, dict[str, dict[str, str]],
                                                                                       dict[str, Any]]:
    inp = write_leads(tmp_path / f"{name}.csv", leads)
    out, report = tmp_path / f"{name}.out.csv", tmp_path / f"{name}.report.json"
    res = CliRunner().invoke(cli, ["run", str(route), str(inp), "-o", str(out), "--report", str(report),
                                   "--checkpoint", f"sqlite:///{tmp_path / (name + '.ckpt.sqlite')}",
                                   "--no-progress"])
    with out.open(newline="", encoding="utf-8") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    return res, rows, json.loads(report.read_text())


def saved(tmp_path: Path) -> dict[str, dict[str, Any]]:
    db = tmp_path / "leads.db"
    if not db.exists():
        return {}
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        try:
            return {r["lead_id"]: dict(r) for r in conn.execute("SELECT * FROM dial_leads")}
        except sqlite3.OperationalError:
            return {}


def test_verdicts_evidence_in_output_report_and_database(tmp_path: Path, vendors: Any) -> None:
    v, rnd = vendors
    route = route_copy(tmp_path, v, rnd, registry(tmp_path, age_days=3))
    res, rows, report = run(tmp_path, route, LEADS, "fresh")
    assert res.exit_code == 0, res.output
    verdict = {k: (r["dial_eligible"], json.loads(r["dial_reasons"])) for k, r in rows.items()}
    assert verdict == {
        "D1": ("yes", []),
        "D2": ("no", ["listed:internal_dnc"]),
        "D3": ("unknown", ["wireless_without_consent"]),
        "D4": ("no", ["reassigned"]),
        "D5": ("yes", []),
    }
    d5 = {e.check: e for e in ev.items(rows["D5"]["dial_evidence"])}
    assert set(d5) == {"line_type", "federal_dnc", "internal_dnc", "litigator", "reassigned", "calling_window"}
    assert d5["reassigned"].source == {"vendor": "fcc-rnd", "request_id": "q-3055550133"}
    assert d5["federal_dnc"].source["file"] == "305.txt" and d5["line_type"].source["vendor"] == "telnyx"
    assert rows["D5"]["dial_window_rules"].startswith("federal 08:00-21:00; FL 08:00-20:00")
    assert rows["D5"]["dial_max_calls_24h"] == "3"
    # the RND was asked with the consent date, once per lead that has one and got this far
    assert sorted((q["tn"], q["date"]) for q in rnd.queries()) == [
        ("2125550188", "2025-02-01"), ("3055550133", "2025-03-01"), ("4155550181", "2025-05-01")]
    # the report counts verdicts and reasons
    assert report["dial"]["verdicts"] == {"no": 2, "unknown": 1, "yes": 2}
    assert report["dial"]["reasons"] == {"listed:internal_dnc": 1, "reassigned": 1, "wireless_without_consent": 1}
    assert report["dial"]["stale"] == 0
    assert "dial verdicts: no 2, unknown 1, yes 2; reasons: listed:internal_dnc 1, reassigned 1" in res.output
    # the database: "no" leads stopped at the verdict and were not saved; the others carry verdict and evidence
    db = saved(tmp_path)
    assert set(db) == {"D1", "D3", "D5"}
    assert db["D5"]["dial_eligible"] == "yes" and json.loads(db["D3"]["dial_reasons"]) == ["wireless_without_consent"]
    assert {e["check"] for e in json.loads(db["D1"]["dial_evidence"])} >= {"federal_dnc", "line_type"}


def test_registry_40_days_old_makes_every_verdict_unknown_and_the_export_refuse(tmp_path: Path, vendors: Any) -> None:
    v, rnd = vendors
    route = route_copy(tmp_path, v, rnd, registry(tmp_path, age_days=40))
    leads = [lead for lead in LEADS if lead["id"] in ("D1", "D3", "D5")]
    res, rows, report = run(tmp_path, route, leads, "stale")
    assert {k: r["dial_eligible"] for k, r in rows.items()} == {"D1": "unknown", "D3": "unknown", "D5": "unknown"}
    for r in rows.values():
        assert "expired:federal_dnc" in json.loads(r["dial_reasons"])
    assert res.exit_code == 1 and "expired evidence" in res.output
    assert report["dial"]["stale"] == 3
    assert saved(tmp_path) == {}  # the save refused every lead
    save = next(st for st in report["stations"] if st["step"] == "DatabaseSaveStation")
    assert save["failed"] == 3 and save["succeeded"] == 0


def test_suppressed_phone_causes_zero_vendor_calls_also_under_a_new_lead_id(tmp_path: Path, vendors: Any) -> None:
    v, rnd = vendors
    route = route_copy(tmp_path, v, rnd, registry(tmp_path, age_days=3))
    runner = CliRunner()
    assert runner.invoke(cli, ["suppress", "add", "+1 305 555 0133", "--reason", "erasure"]).exit_code == 0
    d5 = next(lead for lead in LEADS if lead["id"] == "D5")
    _, rows, _ = run(tmp_path, route, [d5], "suppressed")
    assert rows["D5"]["_status"] == "stopped" and "suppression ledger" in rows["D5"]["_reason"]
    again = {**d5, "id": "D5-new-id", "phone": "305.555.0133", "first_name": "Edward"}
    _, rows, _ = run(tmp_path, route, [again], "suppressed-again")
    assert rows["D5-new-id"]["_status"] == "stopped"
    assert list(v.all_requests()) == [] and rnd.queries() == []  # zero vendor calls across the whole route
    assert saved(tmp_path) == {}
    # a phone the skip trace returns later is screened too: nothing after the skip trace runs
    assert runner.invoke(cli, ["suppress", "add", "(512) 555-0177"]).exit_code == 0
    mary = {"id": "M1", "first_name": "Mary", "last_name": "Jones", "city": "Austin", "state": "TX"}
    _, rows, _ = run(tmp_path, route, [mary], "resourced")
    assert rows["M1"]["_status"] == "stopped" and v.telnyx_lookups() == [] and rnd.queries() == []
    assert saved(tmp_path) == {}


def test_a_forgotten_person_stays_suppressed_under_a_new_lead_id(tmp_path: Path, vendors: Any) -> None:
    v, rnd = vendors
    route = route_copy(tmp_path, v, rnd, registry(tmp_path, age_days=3))
    d5 = next(lead for lead in LEADS if lead["id"] == "D5")
    _, rows, _ = run(tmp_path, route, [d5], "before")
    assert rows["D5"]["dial_eligible"] == "yes" and "D5" in saved(tmp_path)
    calls = len(list(v.all_requests())) + len(rnd.queries())
    res = CliRunner().invoke(cli, ["forget", "--lead-id", "D5", "--route", str(route),
                                   "--checkpoint", f"sqlite:///{tmp_path / 'before.ckpt.sqlite'}"])
    assert res.exit_code == 0, res.output
    assert "suppression ledger" in res.output and "D5" not in saved(tmp_path)
    again = {**d5, "id": "D5-returns", "phone": "+1 305-555-0133"}
    _, rows, _ = run(tmp_path, route, [again], "after")
    assert rows["D5-returns"]["_status"] == "stopped" and "suppression ledger" in rows["D5-returns"]["_reason"]
    assert len(list(v.all_requests())) + len(rnd.queries()) == calls  # no vendor call at all
    assert saved(tmp_path) == {}
