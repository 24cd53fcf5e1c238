"""``routes/hybrid-smart.yaml`` end to end, with every installed plugin and three fake vendors.

TruePeopleSearch, the RapidAPI skip-tracing API and Telnyx Number Lookup are real HTTP servers on
127.0.0.1 (pytest-httpserver) answering in the vendors' documented shapes; identity, DNC, income
and save run for real (DNC on registry files written here, income from the offline ACS data, save
into a SQLite file). The shipped route is copied with only the vendors' base URLs, the local file
paths and test-speed rate limits changed, and TruePeopleSearch opted in. Keys come from the
environment, as in production.

Checked, from the fake vendors' own request logs:

- the waterfall: RapidAPI is called exactly for the leads that still have no phone after the
  lead's own data and TruePeopleSearch, and what it finds only fills missing fields;
- the gate: a lead whose line type Telnyx rejects stops before DNC, income and save (and is not
  in the database); a DNC-listed number stops before income and save;
- the budget: no lead costs more than the route's per-lead budget, and a budget too small for
  the skip trace means RapidAPI is never called;
- the money: the cost per station in the LeadResults and in the run's report equals the requests
  the fake vendors received times their prices;
- the keys: each vendor's key only in its documented header, nowhere in results or the database.
"""

from __future__ import annotations

import asyncio
import csv
import html
import importlib.metadata as md
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml
from pytest_httpserver import HTTPServer
from waystation import Engine, LeadResult, PluginHost, Route, compile_route
from waystation.report import Report, ReportCollector
from waystation.testing.services import service_missing
from werkzeug import Request, Response

ROOT = Path(__file__).resolve().parents[2]
ROUTE = ROOT / "routes" / "hybrid-smart.yaml"
WATERFALL = ROOT / "routes" / "waterfall-example.yaml"
EXAMPLE_LEADS = ROOT / "examples" / "leads.csv"
EXAMPLE_DNC = ROOT / "examples" / "dnc"

PLUGINS = ("waystation-identity", "waystation-peoplesearch", "waystation-rapidapi", "waystation-telnyx",
           "waystation-dnc", "waystation-census", "waystation-sql")

IDENTITY, TPS, SKIP, TELNYX, DNC, INCOME, SAVE = (
    "IdentityResolutionStation", "TruePeopleSearchStation", "SkipTracingStation", "TelnyxGatekeepStation",
    "DNCScrubStation", "IncomeStation", "DatabaseSaveStation")

TELNYX_KEY = "KEY-telnyx-0d6f3c1b9a7e4b2f"
RAPIDAPI_KEY = "key-rapidapi-5e8a1c7f2b9d4e6a"
TELNYX_CARRIER_PRICE = 0.0025  # the plugin's default: one carrier lookup
RAPID_SEARCH_PRICE = 0.01
RAPID_DETAILS_PRICE = 0.01
HTML_TYPE = "text/html; charset=utf-8"


def _require_plugins() -> None:
    missing = []
    for dist in PLUGINS:
        try:
            md.distribution(dist)
        except md.PackageNotFoundError:
            missing.append(dist)
    if missing:
        service_missing(f"plugins not installed: {', '.join(missing)} (the tox 'integration' env installs them all)")


# --------------------------------------------------------------------------- the fake vendors' data


@dataclass
class TpsPerson:
    """A person as TruePeopleSearch shows them: a result card and a detail page."""

    pid: str
    name: str
    age: int
    city: str
    state: str
    phones: list[tuple[str, str, bool, str]] = field(default_factory=list)  # number, type, primary, reported
    address: tuple[str, str, str, str] | None = None


@dataclass
class RapidPerson:
    """A person as the skip-tracing API returns them: a search candidate and a details record."""

    pid: str
    name: str
    age: int
    lives_in: str
    phones: list[tuple[str, str, str]]  # number, type, "Last reported Mon YYYY"
    address: tuple[str, str, str, str]


#: TruePeopleSearch knows John Smith and Ann Lee (with phones) and Ben Ortiz (no phone shown).
TPS_PEOPLE = {
    "John Smith": TpsPerson("ptps-john-1", "John A Smith", 45, "Denver", "CO",
                            [("(720) 555-0190", "Landline", False, "Last reported Jun 2019"),
                             ("(303) 555-0111", "Wireless", True, "Last reported Jan 2026")],
                            ("417 Larimer St", "Denver", "CO", "80205")),
    "Ann Lee": TpsPerson("ptps-ann-1", "Ann B Lee", 52, "Portland", "OR",
                         [("(503) 555-0133", "Wireless", True, "Last reported Apr 2024")],
                         ("2077 SE Belmont St", "Portland", "OR", "97214")),
    "Ben Ortiz": TpsPerson("ptps-ben-1", "Ben Ortiz", 39, "Phoenix", "AZ", [],
                           ("292 N Central Ave", "Phoenix", "AZ", "85004")),
}

#: The skip-tracing API knows Mary Jones, Kim Park and Ben Ortiz (not Zed Quux).
RAPID_PEOPLE = {
    "Mary Jones": RapidPerson("rp-mary-1", "Mary Jones", 38, "Austin, TX",
                              [("(512) 555-0177", "Wireless", "Last reported Oct 2026")],
                              ("2419 Barton Springs Rd", "Austin", "TX", "78704")),
    "Kim Park": RapidPerson("rp-kim-1", "Kim Park", 33, "Seattle, WA",
                            [("(206) 555-0188", "VoIP", "Last reported Mar 2026")],
                            ("1521 Stone Way N", "Seattle", "WA", "98103")),
    "Ben Ortiz": RapidPerson("rp-ben-1", "Ben Ortiz", 40, "Phoenix, AZ",
                             [("(602) 555-0166", "Wireless", "Last reported Sep 2026")],
                             ("9 Elm Ave", "Phoenix", "AZ", "85004")),
}

#: Telnyx's line type per number; every other number is a mobile.
TELNYX_TYPES = {"+15035550133": "fixed line", "+12065550188": "voip"}

#: The hand-made leads: what each one exercises.
LEADS = [
    # TruePeopleSearch finds the phone: no skip trace
    {"id": "H1", "first_name": "John", "last_name": "Smith", "city": "Denver", "state": "CO", "zipcode": "80205"},
    # TruePeopleSearch finds nobody: the skip trace finds the phone
    {"id": "H2", "first_name": "Mary", "last_name": "Jones", "city": "Austin", "state": "TX", "zipcode": "78704"},
    # TruePeopleSearch's phone is a landline for Telnyx: rejected at the gate
    {"id": "H3", "first_name": "Ann", "last_name": "Lee", "city": "Portland", "state": "OR", "zipcode": "97214"},
    # the lead has a phone: no people search, no skip trace; the number is on the DNC list
    {"id": "H4", "first_name": "Phil", "last_name": "Brown", "city": "New York", "state": "NY",
     "zipcode": "10001", "phone": "(212) 555-0123", "email": "phil.brown@example.com"},
    # nobody finds a phone: no Telnyx, no DNC; income and save still run
    {"id": "H5", "first_name": "Zed", "last_name": "Quux", "city": "Miami Beach", "state": "FL", "zipcode": "33139"},
    # skip trace finds a VoIP number: Telnyx lets it through
    {"id": "H6", "first_name": "Kim", "last_name": "Park", "city": "Seattle", "state": "WA", "zipcode": "98103"},
    # TruePeopleSearch finds the person but no phone: the skip trace only fills what is missing
    {"id": "H7", "first_name": "Ben", "last_name": "Ortiz", "city": "Phoenix", "state": "AZ", "zipcode": "85004"},
]
COLUMNS = ["id", "first_name", "last_name", "city", "state", "zipcode", "phone", "email"]

#: DNC registry files for the hand-made leads: full lists of these area codes, one listed number.
FEDERAL = {"212": ["2125550123", "2125550100"], "303": ["3035550102"], "503": ["5035550113"],
           "512": ["5125550100"], "206": ["2065550117"], "602": ["6025550110"]}


# --------------------------------------------------------------------------- the fake vendors' pages


def _tps_results(people: list[TpsPerson]) -> str:
    if not people:
        return ("<html><head><title>TruePeopleSearch.com</title></head><body><div class='h2'>"
                "We could not find any records for that search criteria.</div></body></html>")
    cards = "".join(
        f"<div class='card card-body shadow-form card-summary pt-3' data-detail-link='/find/person/{p.pid}'>"
        f"<div class='h4'><span class='content-header'>{html.escape(p.name)}</span></div>"
        f"<div><span>Age </span><span class='content-value'>{p.age}</span></div>"
        f"<div><span>Lives in </span><span class='content-value'>{html.escape(p.city)}, {p.state}</span></div>"
        "</div>" for p in people)
    return f"<html><head><title>Results | TruePeopleSearch.com</title></head><body>{cards}</body></html>"


def _tps_detail(p: TpsPerson) -> str:
    first, last = p.name.split()[0], p.name.split()[-1]
    addr = ""
    if p.address:
        street, city, state, zipcode = p.address
        addr = (f"<a data-link-to-more='address' href='/find/address/x'><span itemprop='streetAddress'>{street}"
                f"</span><br><span itemprop='addressLocality'>{city}</span>, <span itemprop='addressRegion'>"
                f"{state}</span> <span itemprop='postalCode'>{zipcode}</span></a>")
    phones = "".join(
        f"<div class='col-12 col-md-6 mb-3'><a data-link-to-more='phone' href='/find/phone/x'><span>{num}</span>"
        f"</a> - <span class='smaller'>{kind}</span><br>"
        + ("<span class='dt-sb'><b>Possible Primary Phone</b></span><br>" if primary else "")
        + f"<span class='dt-sb'>{reported}</span></div>" for num, kind, primary, reported in p.phones)
    return (f"<html><head><title>{p.name} | TruePeopleSearch.com</title></head><body>"
            f"<div id='personDetails' data-fn='{first}' data-ln='{last}' data-age='{p.age}' data-city='{p.city}' "
            f"data-state='{p.state}'><h1 class='oh1'>{p.name}</h1>{addr}<div class='row'>{phones}</div></div>"
            "</body></html>")


def _rapid_details(p: RapidPerson) -> dict[str, Any]:
    street, city, state, zipcode = p.address
    return {
        "Person Details": [{"Person_name": p.name, "Age": str(p.age), "Lives in": p.lives_in,
                            "Telephone": p.phones[0][0]}],
        "Email Addresses": [f"{p.name.lower().replace(' ', '.')}@example.com"],
        "All Phone Details": [{"phone_number": n, "phone_type": t, "last_reported": r, "provider": "Carrier"}
                              for n, t, r in p.phones],
        "Current Address Details List": [{"street_address": street, "address_locality": city,
                                          "address_region": state, "postal_code": zipcode}],
        "Previous Address Details": [],
        "All Relatives": [],
        "All Associates": [],
    }


def _telnyx(number: str) -> dict[str, Any]:
    kind = TELNYX_TYPES.get(number, "mobile")
    return {"data": {
        "record_type": "number_lookup", "phone_number": number, "country_code": "US",
        "national_format": f"({number[2:5]}) {number[5:8]}-{number[8:]}", "fraud": None, "caller_name": None,
        "carrier": {"name": "Carrier Inc", "normalized_carrier": "Carrier", "type": kind,
                    "mobile_country_code": "310", "mobile_network_code": 260, "error_code": None},
        "portability": {"lrn": number[2:], "ported_status": "N", "ported_date": "", "ocn": "6529",
                        "line_type": kind, "spid": "6529", "spid_carrier_name": "Carrier Inc",
                        "city": "X", "state": "Y"},
        "valid_number": True,
    }}


class Vendors:
    """The three fake vendors, each a real HTTP server on 127.0.0.1, and what they were asked."""

    def __init__(self) -> None:
        self.tps = HTTPServer(host="127.0.0.1", port=0)
        self.rapid = HTTPServer(host="127.0.0.1", port=0)
        self.telnyx = HTTPServer(host="127.0.0.1", port=0)
        self.wrong_key: list[str] = []

    def start(self) -> None:
        for server in (self.tps, self.rapid, self.telnyx):
            server.start()
        self.tps.expect_request("/robots.txt").respond_with_data("User-agent: *\nAllow: /\n")
        self.tps.expect_request("/results").respond_with_handler(self._tps_results)
        self.tps.expect_request(re.compile(r"^/find/person/[^/]+$")).respond_with_handler(self._tps_detail)
        self.rapid.expect_request(re.compile(r"^/search/.+$")).respond_with_handler(self._rapid)
        self.telnyx.expect_request(re.compile(r"^/v2/number_lookup/.+$")).respond_with_handler(self._telnyx)

    def stop(self) -> None:
        for server in (self.tps, self.rapid, self.telnyx):
            server.clear()
            if server.is_running():
                server.stop()

    def clear_logs(self) -> None:
        for server in (self.tps, self.rapid, self.telnyx):
            server.clear_log()

    # handlers

    def _tps_results(self, request: Request) -> Response:
        name = request.args.get("name", "")
        return Response(_tps_results([p for key, p in TPS_PEOPLE.items() if key == name]),
                        content_type=HTML_TYPE)

    def _tps_detail(self, request: Request) -> Response:
        pid = request.path.rsplit("/", 1)[-1]
        person = next((p for p in TPS_PEOPLE.values() if p.pid == pid), None)
        if person is None:
            return Response("Not Found", status=404)
        return Response(_tps_detail(person), content_type=HTML_TYPE)

    def _rapid(self, request: Request) -> Response:
        if request.headers.get("X-RapidAPI-Key") != RAPIDAPI_KEY:
            self.wrong_key.append(request.path)
            return Response(json.dumps({"message": "Invalid API key."}), status=401,
                            content_type="application/json")
        if request.path == "/search/detailsbyID":
            pid = request.args.get("peo_id", "")
            person = next((p for p in RAPID_PEOPLE.values() if p.pid == pid), None)
            body: Any = _rapid_details(person) if person else {"message": "peo_id Not Valid"}
            return Response(json.dumps(body), status=200 if person else 404, content_type="application/json")
        person = RAPID_PEOPLE.get(request.args.get("name", ""))
        people = [{"Name": person.name, "Person ID": person.pid, "Age": str(person.age),
                   "Lives in": person.lives_in}] if person else []
        return Response(json.dumps({"PeopleDetails": people}), content_type="application/json")

    def _telnyx(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {TELNYX_KEY}":
            self.wrong_key.append(request.path)
            return Response(json.dumps({"errors": [{"code": "10009", "title": "Authentication failed"}]}),
                            status=401, content_type="application/json")
        number = unquote(request.path.rsplit("/", 1)[-1])
        return Response(json.dumps(_telnyx(number)), content_type="application/json")

    # what the vendors saw

    def requests(self, server: HTTPServer, pattern: str) -> list[Request]:
        """The requests ``server`` received whose path matches ``pattern``."""
        return [req for req, _ in server.log if re.fullmatch(pattern, req.path)]

    def rapid_searches(self) -> list[Request]:
        """Search calls of the skip-tracing API (every endpoint but detailsbyID)."""
        return [r for r in self.requests(self.rapid, r"/search/.+") if r.path != "/search/detailsbyID"]

    def rapid_details(self) -> list[Request]:
        """detailsbyID calls."""
        return self.requests(self.rapid, r"/search/detailsbyID")

    def telnyx_lookups(self) -> list[Request]:
        """Number Lookup calls."""
        return self.requests(self.telnyx, r"/v2/number_lookup/.+")

    def expected_costs(self) -> dict[str, float]:
        """What each paid station must have been charged, from the requests the vendors received."""
        return {
            TPS: 0.0,
            SKIP: len(self.rapid_searches()) * RAPID_SEARCH_PRICE + len(self.rapid_details()) * RAPID_DETAILS_PRICE,
            TELNYX: len(self.telnyx_lookups()) * TELNYX_CARRIER_PRICE,
        }

    def all_requests(self) -> Iterator[Request]:
        for server in (self.tps, self.rapid, self.telnyx):
            for req, _ in server.log:
                yield req


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    _require_plugins()
    v = Vendors()
    v.start()
    try:
        yield v
    finally:
        v.stop()


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The vendors' keys in the environment, where the plugins read them."""
    monkeypatch.setenv("TELNYX_API_KEY", TELNYX_KEY)
    monkeypatch.setenv("RAPIDAPI_KEY", RAPIDAPI_KEY)


# --------------------------------------------------------------------------- the route under test


def route_copy(vendors: Vendors, tmp_path: Path, dnc: dict[str, Any], *, budget: float | None = None,
               source: Path = ROUTE) -> Path:
    """A shipped route with only base URLs, local paths and test-speed limits changed."""
    spec = yaml.safe_load(source.read_text(encoding="utf-8"))
    if budget is not None:
        spec["budget"] = budget
    fast = {"per_second": 1000}
    by_station = {s["station"]: s for s in spec["steps"]}
    if source == ROUTE:
        assert set(by_station) == {IDENTITY, TPS, SKIP, TELNYX, DNC, INCOME, SAVE}
    tps = by_station[TPS]
    tps["enabled"] = True
    tps["settings"] = {**tps.get("settings", {}), "enabled_by_user": True, "contact": "it@example.com",
                       "base_url": vendors.tps.url_for("/").rstrip("/"), "request_interval": 0}
    tps["rate_limit"] = {**fast, "concurrent": 1}
    skip = by_station[SKIP]
    skip["settings"] = {**skip.get("settings", {}), "base_url": vendors.rapid.url_for("/").rstrip("/"),
                        "allow_hosts": ["127.0.0.1"]}
    skip["rate_limit"] = fast
    tel = by_station[TELNYX]
    # the fake vendors are plain-http servers on 127.0.0.1: the route allows the keys to go there
    tel["settings"] = {**tel.get("settings", {}), "base_url": vendors.telnyx.url_for("/v2"),
                       "allow_hosts": ["127.0.0.1"]}
    tel["rate_limit"] = fast
    if DNC in by_station:
        by_station[DNC]["settings"] = {**by_station[DNC].get("settings", {}), **dnc,
                                       "store": str(tmp_path / "dnc.sqlite")}
    by_station[SAVE]["settings"] = {**by_station[SAVE].get("settings", {}),
                                    "url": f"sqlite:///{tmp_path / 'leads.db'}", "table": "hybrid_leads"}
    text = yaml.safe_dump(spec, sort_keys=False)
    assert TELNYX_KEY not in text and RAPIDAPI_KEY not in text
    path = tmp_path / source.name
    path.write_text(text, encoding="utf-8")
    return path


def hand_made_dnc(tmp_path: Path) -> dict[str, Any]:
    """A federal full list for the area codes of the hand-made leads."""
    federal = tmp_path / "federal.txt"
    federal.write_text("".join(f"{n}\n" for numbers in FEDERAL.values() for n in numbers), encoding="utf-8")
    return {"federal_files": [str(federal)], "change_files": [], "internal_files": [], "litigator_files": []}


def write_leads(path: Path, leads: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for lead in leads:
            writer.writerow({c: lead.get(c, "") for c in COLUMNS})
    return path


def read_leads(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [{k: v for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(fh)]


async def run_route(path: Path, leads: list[dict[str, str]]) -> tuple[list[LeadResult], Report]:
    """Run ``leads`` through the route with the installed plugins (Engine API) and a report collector."""
    engine = Engine.from_yaml(path)
    collector = ReportCollector("it", engine.plan.name, [(s.id, s.spec.station) for s in engine.plan.steps])
    engine.pm.register(collector, name="it-report")
    engine.refresh_hooks()
    async with engine:
        results = await asyncio.gather(*(engine.run(lead) for lead in leads))
    return list(results), collector.report()


def saved_ids(tmp_path: Path) -> set[str]:
    with sqlite3.connect(tmp_path / "leads.db") as conn:
        return {row[0] for row in conn.execute("SELECT lead_id FROM hybrid_leads")}


# --------------------------------------------------------------------------- the invariants


def check_invariants(results: list[LeadResult], report: Report, vendors: Vendors, budget: float,
                     saved: set[str]) -> None:
    """What must hold for any leads file."""
    ran = [r for r in results if r.steps[SKIP].status in ("succeeded", "failed")]
    # the waterfall: RapidAPI only for leads still without a phone; it never overwrites a phone
    for r in ran:
        prov = r.provenance.get("phone")
        assert prov is None or prov.step == SKIP, (r.lead_id, prov)
        assert r.steps[TPS].status != "succeeded" or not r.steps[TPS].hit or "phone" in r.steps[TPS].misses
    for r in results:
        if r.steps[SKIP].status == "skipped":
            assert r.steps[SKIP].reason in ("condition", "fallback_not_needed", "budget", "stopped",
                                            "breaker_open"), (r.lead_id, r.steps[SKIP].reason)
    assert len(vendors.rapid_searches()) == sum(r.steps[SKIP].attempts for r in ran)
    # the gate: a Telnyx rejection stops DNC, income and save; a DNC listing stops income and save
    for r in results:
        if r.steps[TELNYX].stop is not None and (r.steps[TELNYX].cause or "").startswith("gate "):
            # the gate could not run (no phone, vendor down, breaker open): it fails closed
            assert r.status in ("held", "failed") and r.reason and r.reason.startswith(f"gate {TELNYX} did not pass")
            for sid in (DNC, INCOME, SAVE):
                assert (r.steps[sid].status, r.steps[sid].reason) == ("skipped", "stopped"), (r.lead_id, sid)
            assert r.lead_id not in saved
        elif r.steps[TELNYX].stop is not None:
            assert r.status == "stopped" and r.reason and "telnyx" in r.reason
            for sid in (DNC, INCOME, SAVE):
                assert (r.steps[sid].status, r.steps[sid].reason) == ("skipped", "stopped"), (r.lead_id, sid)
            assert r.lead_id not in saved
        if r.steps[DNC].stop is not None:
            assert r.data.get("dnc_listed") is True
            for sid in (INCOME, SAVE):
                assert (r.steps[sid].status, r.steps[sid].reason) == ("skipped", "stopped"), (r.lead_id, sid)
            assert r.lead_id not in saved
        if r.steps[SAVE].status == "succeeded":
            assert r.lead_id in saved
    # the budget
    for r in results:
        assert r.total_cost <= budget + 1e-9, (r.lead_id, r.total_cost)
        assert sum(rec.cost for rec in r.steps.values()) == pytest.approx(r.total_cost, abs=1e-9)
    # the money: per station, LeadResults == report == requests at the fake vendors x prices
    expected = vendors.expected_costs()
    for station, amount in expected.items():
        from_results = sum(r.steps[station].cost for r in results)
        assert from_results == pytest.approx(amount, abs=1e-9), station
        assert report.station(station).cost == pytest.approx(amount, abs=1e-9), station
    assert report.total_cost == pytest.approx(sum(expected.values()), abs=1e-9)
    # the keys: only in their documented headers, never in results
    assert vendors.wrong_key == []
    for req in vendors.all_requests():
        where = [req.full_path, req.get_data(as_text=True)] + [
            f"{k}: {v}" for k, v in req.headers.items() if k.lower() not in ("authorization", "x-rapidapi-key")]
        assert not any(key in text for key in (TELNYX_KEY, RAPIDAPI_KEY) for text in where), req.path
    dumped = json.dumps([r.model_dump(mode="json") for r in results])
    assert TELNYX_KEY not in dumped and RAPIDAPI_KEY not in dumped


# --------------------------------------------------------------------------- the tests


async def test_hybrid_smart_on_hand_made_leads(vendors: Vendors, keys: None, tmp_path: Path) -> None:
    route = route_copy(vendors, tmp_path, hand_made_dnc(tmp_path))
    budget = float(yaml.safe_load(ROUTE.read_text())["budget"])
    results, report = await run_route(route, LEADS)
    by_id = {r.lead_id: r for r in results}
    saved = saved_ids(tmp_path)
    check_invariants(results, report, vendors, budget, saved)

    # the waterfall asked RapidAPI about exactly the leads with no phone after TruePeopleSearch
    searched = sorted(r.args["name"] for r in vendors.rapid_searches())
    assert searched == ["Ben Ortiz", "Kim Park", "Mary Jones", "Zed Quux"]
    assert sorted(r.args["peo_id"] for r in vendors.rapid_details()) == ["rp-ben-1", "rp-kim-1", "rp-mary-1"]
    for lid in ("H1", "H3", "H4"):
        assert (by_id[lid].steps[SKIP].status, by_id[lid].steps[SKIP].reason) == ("skipped", "condition")
    assert (by_id["H4"].steps[TPS].status, by_id["H4"].steps[TPS].reason) == ("skipped", "condition")
    assert by_id["H1"].data["phone"] == "+13035550111"
    assert by_id["H1"].provenance["phone"].step == TPS
    assert by_id["H2"].data["phone"] == "+15125550177"
    assert by_id["H2"].provenance["phone"].step == SKIP
    assert by_id["H4"].data["phone"] == "+12125550123"
    # fill-only: TruePeopleSearch's age and address for Ben Ortiz stay; RapidAPI adds the phone
    ben = by_id["H7"]
    assert ben.data["phone"] == "+16025550166" and ben.provenance["phone"].step == SKIP
    assert ben.data["age"] == 39 and ben.provenance["age"].step == TPS
    assert ben.data["current_address"] == "292 N Central Ave, Phoenix, AZ 85004"

    # Telnyx: every lead with a phone, once; Ann Lee's "wireless" is a fixed line for Telnyx
    looked_up = sorted(unquote(r.path.rsplit("/", 1)[-1]) for r in vendors.telnyx_lookups())
    assert looked_up == sorted(["+13035550111", "+15125550177", "+15035550133", "+12125550123",
                                "+12065550188", "+16025550166"])
    ann = by_id["H3"]
    assert ann.status == "stopped" and "fixed line" in (ann.reason or "")
    assert by_id["H5"].steps[TELNYX].reason == "missing_requirements"
    # no phone found: the Telnyx gate cannot run, so the lead fails closed (never scrubbed or saved)
    assert by_id["H5"].status == "failed" and by_id["H5"].cause == f"gate {TELNYX}: missing_requirements"
    assert by_id["H6"].data["line_type"] == "voip" and by_id["H6"].status == "succeeded"
    # DNC: Phil Brown's number is listed
    assert by_id["H4"].data["dnc_listed"] is True and by_id["H4"].status == "stopped"
    assert saved == {"H1", "H2", "H6", "H7"}
    assert by_id["H1"].data.get("median_household_income") is not None

    # the money, per station and lead
    assert by_id["H2"].steps[SKIP].cost == pytest.approx(RAPID_SEARCH_PRICE + RAPID_DETAILS_PRICE)
    assert by_id["H5"].steps[SKIP].cost == pytest.approx(RAPID_SEARCH_PRICE)  # nobody found: one call
    assert by_id["H2"].total_cost == pytest.approx(0.02 + TELNYX_CARRIER_PRICE)
    assert report.station(SKIP).cost == pytest.approx(4 * RAPID_SEARCH_PRICE + 3 * RAPID_DETAILS_PRICE)
    assert report.station(TELNYX).cost == pytest.approx(6 * TELNYX_CARRIER_PRICE)
    # TruePeopleSearch: one results page per lead it ran for, a detail page per match, robots.txt once
    assert len(vendors.requests(vendors.tps, r"/robots\.txt")) == 1
    assert len(vendors.requests(vendors.tps, r"/results")) == 6
    assert sorted(r.path for r in vendors.requests(vendors.tps, r"/find/person/.+")) == [
        "/find/person/ptps-ann-1", "/find/person/ptps-ben-1", "/find/person/ptps-john-1"]

    db = (tmp_path / "leads.db").read_bytes()
    assert TELNYX_KEY.encode() not in db and RAPIDAPI_KEY.encode() not in db


async def test_a_budget_too_small_for_the_skip_trace_never_calls_it(vendors: Vendors, keys: None,
                                                                     tmp_path: Path) -> None:
    budget = 0.01  # Telnyx's reservation fits, RapidAPI's two calls do not
    route = route_copy(vendors, tmp_path, hand_made_dnc(tmp_path), budget=budget)
    results, report = await run_route(route, LEADS)
    check_invariants(results, report, vendors, budget, saved_ids(tmp_path))
    assert vendors.rapid_searches() == [] and vendors.rapid_details() == []
    by_id = {r.lead_id: r for r in results}
    for lid in ("H2", "H5", "H6", "H7"):
        assert (by_id[lid].steps[SKIP].status, by_id[lid].steps[SKIP].reason) == ("skipped", "budget")
    assert report.station(SKIP).skipped.get("budget") == 4
    # the leads TruePeopleSearch solved still pass the gate
    assert len(vendors.telnyx_lookups()) == 3  # H1, H3 (TruePeopleSearch) and H4 (its own phone)
    assert all(r.total_cost <= budget for r in results)


async def test_hybrid_smart_on_the_example_leads(vendors: Vendors, keys: None, tmp_path: Path) -> None:
    if not EXAMPLE_LEADS.exists():
        pytest.skip("examples/leads.csv is not in this checkout")
    leads = read_leads(EXAMPLE_LEADS)
    dnc = {"federal_files": [str(EXAMPLE_DNC / "federal")], "change_files": [str(EXAMPLE_DNC / "changes")],
           "internal_files": [str(EXAMPLE_DNC / "internal.txt")],
           "litigator_files": [str(EXAMPLE_DNC / "litigators.txt")]}
    route = route_copy(vendors, tmp_path, dnc)
    budget = float(yaml.safe_load(ROUTE.read_text())["budget"])
    results, report = await run_route(route, leads)
    assert len(results) == len({r.lead_id for r in results})
    check_invariants(results, report, vendors, budget, saved_ids(tmp_path))
    # every lead without a usable phone went down the waterfall; every lead with one did not
    without = [r for r in results if r.steps[IDENTITY].status == "succeeded"
               and r.steps[TPS].status == "succeeded" and not r.data.get("phone")]
    assert without, "the example leads should include some without a phone"
    assert all(r.steps[SKIP].status == "succeeded" for r in without)
    # a number Telnyx cannot be asked about (not E.164-able) is a free invalid verdict, not a lookup
    paid = [r for r in results if r.steps[TELNYX].cost > 0]
    assert len(paid) == len(vendors.telnyx_lookups())
    assert report.station(TELNYX).runs >= len(paid)


async def test_cli_run_reports_what_the_vendors_were_paid(vendors: Vendors, tmp_path: Path) -> None:
    route = route_copy(vendors, tmp_path, hand_made_dnc(tmp_path))
    leads = write_leads(tmp_path / "leads.csv", LEADS)
    out, report_path = tmp_path / "out.csv", tmp_path / "report.json"
    env = {**os.environ, "TELNYX_API_KEY": TELNYX_KEY, "RAPIDAPI_KEY": RAPIDAPI_KEY, "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "waystation", "run", str(route), str(leads), "-o", str(out),
         "--checkpoint", f"sqlite:///{tmp_path / 'checkpoints.db'}", "--report", str(report_path),
         "--no-progress"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the route lets the keys go to the plain-http test servers: said before the run, never silent
    said = " ".join(proc.stderr.split())
    for station in ("SkipTracingStation", "TelnyxGatekeepStation"):
        assert f"'{station}': {station} may send its key to 127.0.0.1 (allow_hosts)" in said
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["id"] for r in rows) == [lead["id"] for lead in LEADS]
    report = json.loads(report_path.read_text(encoding="utf-8"))
    costs = {s["step"]: s["cost"] for s in report["stations"]}
    for station, amount in vendors.expected_costs().items():
        assert costs[station] == pytest.approx(amount, abs=1e-9), station
    assert len(vendors.rapid_searches()) == 4 and len(vendors.telnyx_lookups()) == 6
    for text in (proc.stdout, proc.stderr, out.read_text(encoding="utf-8"), report_path.read_text()):
        assert TELNYX_KEY not in text and RAPIDAPI_KEY not in text
    assert saved_ids(tmp_path) == {"H1", "H2", "H6", "H7"}  # H5 has no phone: the Telnyx gate fails it closed


def test_the_shipped_routes_compile_with_the_people_search_off() -> None:
    _require_plugins()
    host = PluginHost.discover()
    for path in (ROUTE, WATERFALL):
        plan = compile_route(Route.from_file(path), host)
        tps = next(s for s in plan.steps if s.spec.station == TPS)
        assert not tps.enabled and tps.settings is not None
        assert tps.settings.enabled_by_user is False  # type: ignore[attr-defined]
        skip = next(s for s in plan.steps if s.spec.station == SKIP)
        assert skip.fallback_fields and "phone" in skip.fallback_fields and tps.index in skip.deps
    plan = compile_route(Route.from_file(ROUTE), host)
    assert plan.budget is not None and plan.budget >= plan.step(SKIP).cost + plan.step(TELNYX).cost
    # the gate: DNC, income and save all come after Telnyx
    for sid in (DNC, INCOME, SAVE):
        assert plan.step(TELNYX).index in plan.step(sid).ancestors, sid


async def test_the_waterfall_example_asks_each_provider_only_when_needed(vendors: Vendors, keys: None,
                                                                         tmp_path: Path) -> None:
    route = route_copy(vendors, tmp_path, {}, source=WATERFALL)
    results, report = await run_route(route, LEADS)
    by_id = {r.lead_id: r for r in results}
    tps_id, skip_id = "truepeoplesearch", "skiptrace"
    # 1. the lead's own phone: no provider asked
    assert [(by_id["H4"].steps[s].status, by_id["H4"].steps[s].reason) for s in (tps_id, skip_id)] == [
        ("skipped", "fallback_not_needed")] * 2
    # 2. TruePeopleSearch found it: the paid provider is not asked
    assert by_id["H1"].steps[skip_id].reason == "fallback_not_needed"
    # 3. the paid provider only for the rest; it fills the phone, keeps TruePeopleSearch's age
    assert sorted(r.args["name"] for r in vendors.rapid_searches()) == ["Ben Ortiz", "Kim Park", "Mary Jones",
                                                                       "Zed Quux"]
    assert by_id["H7"].provenance["phone"].step == skip_id and by_id["H7"].provenance["age"].step == tps_id
    assert report.station(skip_id).cost == pytest.approx(vendors.expected_costs()[SKIP])
    assert all(r.total_cost <= 0.03 + 1e-9 for r in results)
