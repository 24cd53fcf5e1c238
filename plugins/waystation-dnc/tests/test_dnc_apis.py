"""The paid DNC scrub APIs (Blacklist Alliance, DNCScrub) through the real engine, against a real
HTTP server on 127.0.0.1 serving the documented bodies of ``data/dnc-scrub-examples.json``
(including the error bodies: plain-text bad keys, 400/401), asserting fields, costs booked,
retries made and the lead's status."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import yaml
from pytest_httpserver import HTTPServer
from waystation import Outcome, Station, StepContext
from waystation.testing import StationTests, run_route, run_station
from waystation.testing.fake_vendor import Reply
from waystation_dnc import plugin
from waystation_dnc.blacklist import BlacklistAllianceStation
from waystation_dnc.dncscrub import DNCScrubApiStation

EXAMPLES: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "dnc-scrub-examples.json").read_text())
BLA = EXAMPLES["blacklist_alliance"]
SCRUB = EXAMPLES["dncscrub_dnc_com"]
BLA_KEY = "bla-key-7Qx+/9=="
SCRUB_KEY = "scrub-login-5e1f"
PRICE = 0.003


def bla(name: str) -> dict[str, Any]:
    return copy.deepcopy(BLA[name])


def scrub_records(*phones: str) -> list[dict[str, Any]]:
    by_phone = {r["Phone"]: r for r in SCRUB["scrub_response"]}
    return [copy.deepcopy(by_phone[p]) for p in phones]


def bla_settings(server: HTTPServer, **extra: Any) -> dict[str, Any]:
    return {"api_key": BLA_KEY, "base_url": server.url_for("/").rstrip("/"), "price": PRICE,
            "allow_hosts": ["localhost", "127.0.0.1"], **extra}


def scrub_settings(server: HTTPServer, **extra: Any) -> dict[str, Any]:
    return {"api_key": SCRUB_KEY, "base_url": server.url_for("/").rstrip("/"), "price": PRICE,
            "allow_hosts": ["localhost", "127.0.0.1"], **extra}


class After(Station):
    """A free step after the gate."""

    name = "AfterDnc"
    requires = ("phone",)
    provides = MappingProxyType({"after": str})

    async def process(self, ctx: StepContext) -> Outcome:
        return Outcome({"after": "ran"})


def gate_route(station: str, settings: dict[str, Any], **step: Any) -> str:
    return yaml.safe_dump({"name": "dnc-api", "steps": [
        {"id": "dnc", "station": station, "settings": settings, **step},
        {"id": "next", "station": "AfterDnc", "after": ["dnc"]}]})


# --------------------------------------------------------------------------- Blacklist Alliance


def serve_bla(server: HTTPServer, phone: str, body: Any, status: int = 200, oneshot: bool = False,
              headers: dict[str, str] | None = None) -> None:
    query = {"key": BLA_KEY, "ver": "v5", "resp": "json", "phone": phone}
    expect = server.expect_oneshot_request if oneshot else server.expect_request
    text = body if isinstance(body, str) else json.dumps(body)
    ctype = "text/plain" if isinstance(body, str) else "application/json"
    expect("/lookup", query_string=query).respond_with_data(text, status=status, headers=headers, content_type=ctype)


async def test_blacklisted_litigator_and_federal_dnc_stops_the_lead(httpserver: HTTPServer) -> None:
    serve_bla(httpserver, "2223334444", bla("response_json_blacklisted"))
    [r] = await run_route(gate_route("BlacklistAllianceStation", bla_settings(httpserver)),
                          [{"id": "b1", "phone": "(222) 333-4444"}], [BlacklistAllianceStation, After],
                          plugins=[plugin])
    rec = r.steps["dnc"]
    assert r.data["dnc_listed"] is True and r.data["dnc_lists"] == ["litigator", "federal"]
    assert (rec.status, rec.attempts, rec.cost) == ("succeeded", 1, pytest.approx(PRICE))
    assert r.status == "stopped" and "litigator, federal" in (r.reason or "")
    assert r.steps["next"].reason == "stopped" and r.total_cost == pytest.approx(PRICE)


async def test_good_number_passes_and_is_billed(httpserver: HTTPServer) -> None:
    serve_bla(httpserver, "5556667777", bla("response_json_clean"))
    [r] = await run_route(gate_route("BlacklistAllianceStation", bla_settings(httpserver)),
                          [{"id": "b2", "phone": "+15556667777"}], [BlacklistAllianceStation, After], plugins=[plugin])
    assert (r.data["dnc_listed"], r.data["dnc_lists"]) == (False, [])
    assert r.status == "succeeded" and r.data["after"] == "ran"
    assert r.steps["dnc"].cost == pytest.approx(PRICE)


@pytest.mark.parametrize(("message", "code", "lists"), [
    ("StateDNC", "texas-dnc", ["state"]), ("Suppressed", "none", ["suppressed"]),
    ("FederalDNC", "", ["federal"]), ("Blacklisted", "gov", ["gov"]), ("Blacklisted", "none", ["blacklisted"]),
])
async def test_every_listing_message_and_code_is_a_listing(httpserver: HTTPServer, message: str, code: str,
                                                           lists: list[str]) -> None:
    serve_bla(httpserver, "2223334444", {**bla("response_json_clean"), "message": message, "code": code})
    r = await run_station(BlacklistAllianceStation, {"phone": "2223334444"}, settings=bla_settings(httpserver),
                          plugins=[plugin])
    assert (r.fields["dnc_listed"], r.fields["dnc_lists"]) == (True, lists)
    assert r.result.status == "stopped"


async def test_ignore_lists_setting(httpserver: HTTPServer) -> None:
    serve_bla(httpserver, "2223334444", {**bla("response_json_clean"), "message": "Suppressed", "code": "none"})
    r = await run_station(BlacklistAllianceStation, {"phone": "2223334444"},
                          settings=bla_settings(httpserver, ignore_lists=["suppressed"]), plugins=[plugin])
    assert (r.fields["dnc_listed"], r.fields["dnc_lists"], r.result.status) == (False, [], "succeeded")


@pytest.mark.parametrize("body", ["API Key Not Found", "Access denied"])
async def test_plain_text_key_errors_are_auth_failures_not_retried(httpserver: HTTPServer, body: str) -> None:
    serve_bla(httpserver, "2223334444", body)
    [r] = await run_route(gate_route("BlacklistAllianceStation", bla_settings(httpserver), on_error="fail"),
                          [{"id": "b3", "phone": "2223334444"}], [BlacklistAllianceStation, After], plugins=[plugin])
    rec = r.steps["dnc"]
    assert (rec.status, rec.error_category, rec.attempts, rec.cost) == ("failed", "auth", 1, 0)
    # the gate holds the lead: a key problem is a fault (fix the key, then run --resume)
    assert r.status == "held" and r.cause == "gate dnc: auth" and "after" not in r.data
    assert BLA_KEY not in json.dumps(r.model_dump(mode="json"))


async def test_garbage_is_retried_then_recorded(httpserver: HTTPServer) -> None:
    serve_bla(httpserver, "2223334444", '{"status": "succ', oneshot=True)
    serve_bla(httpserver, "2223334444", bla("response_json_clean"))
    r = await run_station(BlacklistAllianceStation, {"phone": "2223334444"}, settings=bla_settings(httpserver),
                          plugins=[plugin])
    assert (r.record.status, r.record.attempts, r.record.cost) == ("succeeded", 2, pytest.approx(PRICE))


async def test_429_with_a_wait_is_retried_after_it(httpserver: HTTPServer) -> None:
    serve_bla(httpserver, "2223334444", "Too Many Requests", status=429, oneshot=True, headers={"Retry-After": "1"})
    serve_bla(httpserver, "2223334444", bla("response_json_clean"))
    r = await run_station(BlacklistAllianceStation, {"phone": "2223334444"}, settings=bla_settings(httpserver),
                          plugins=[plugin])
    assert (r.record.status, r.record.attempts, r.record.cost) == ("succeeded", 2, pytest.approx(PRICE))


async def test_no_key_and_a_non_vendor_host_send_nothing(httpserver: HTTPServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BLACKLIST_ALLIANCE_KEY", raising=False)
    r = await run_station(BlacklistAllianceStation, {"phone": "2223334444"},
                          settings={k: v for k, v in bla_settings(httpserver).items() if k != "api_key"})
    assert r.record.error_category == "auth" and "BLACKLIST_ALLIANCE_KEY" in (r.record.error or "")
    r = await run_station(BlacklistAllianceStation, {"phone": "2223334444"},
                          settings={k: v for k, v in bla_settings(httpserver).items() if k != "allow_hosts"})
    assert r.record.error_category == "auth" and "allow_hosts" in (r.record.error or "")
    assert httpserver.log == []


async def test_invalid_and_foreign_numbers_are_free_misses(httpserver: HTTPServer) -> None:
    for lead in ({"phone": "+442071234567"}, {"phone": "+12125550100", "phone_valid": False}, {"phone": "12-34"}):
        r = await run_station(BlacklistAllianceStation, lead, settings=bla_settings(httpserver), plugins=[plugin])
        assert r.fields == {} and r.record.cost == 0 and r.record.misses["dnc_listed"]
    assert httpserver.log == []


class TestBlacklistAllianceStandard(StationTests):
    """The documented "Blacklisted" answer (pre-litigation and federal DNC)."""

    station_class = BlacklistAllianceStation
    sample_lead = {"phone": "+12223334444", "phone_valid": True}
    settings = {"api_key": BLA_KEY, "base_url": "{vendor_url}", "price": PRICE, "allow_hosts": ["127.0.0.1"]}
    fake_responses = {"/lookup": Reply.json(BLA["response_json_blacklisted"])}
    expected_fields = {"dnc_listed": True, "dnc_lists": ["litigator", "federal"]}
    allow_secret_in = ("query",)  # the vendor's design: the simple lookup API takes the key as a query parameter


# --------------------------------------------------------------------------- DNCScrub


def serve_scrub(server: HTTPServer, phone: str, body: Any, status: int = 200, oneshot: bool = False) -> None:
    expect = server.expect_oneshot_request if oneshot else server.expect_request
    query = {"phoneList": phone, "version": "5", "output": "json"}
    text = body if isinstance(body, str) else json.dumps(body)
    expect("/app/main/rpc/scrub", query_string=query, headers={"loginId": SCRUB_KEY}).respond_with_data(
        text, status=status, content_type="application/json")


@pytest.mark.parametrize(("phone", "lists"), [("5039367187", ["litigator"]), ("7075276405", ["federal"])])
async def test_dncscrub_do_not_call_records_stop_the_lead(httpserver: HTTPServer, phone: str,
                                                          lists: list[str]) -> None:
    serve_scrub(httpserver, phone, scrub_records(phone))
    [r] = await run_route(gate_route("DNCScrubApiStation", scrub_settings(httpserver)), [{"id": "s", "phone": phone}],
                          [DNCScrubApiStation, After], plugins=[plugin])
    assert (r.data["dnc_listed"], r.data["dnc_lists"]) == (True, lists)
    assert r.status == "stopped" and r.steps["next"].reason == "stopped"
    assert (r.steps["dnc"].attempts, r.steps["dnc"].cost) == (1, pytest.approx(PRICE))


async def test_dncscrub_wireless_is_not_a_listing(httpserver: HTTPServer) -> None:
    serve_scrub(httpserver, "5039367181", scrub_records("5039367181"))
    r = await run_station(DNCScrubApiStation, {"phone": "503-936-7181"}, settings=scrub_settings(httpserver),
                          plugins=[plugin])
    assert (r.fields["dnc_listed"], r.fields["dnc_lists"], r.result.status) == (False, [], "succeeded")
    assert r.record.cost == pytest.approx(PRICE)


async def test_dncscrub_unknown_result_code_fails_closed(httpserver: HTTPServer) -> None:
    record = {**scrub_records("5039367181")[0], "ResultCode": "X", "Reason": "Something new"}
    serve_scrub(httpserver, "5039367181", [record])
    [r] = await run_route(gate_route("DNCScrubApiStation", scrub_settings(httpserver), on_error="fail"),
                          [{"id": "x", "phone": "5039367181"}], [DNCScrubApiStation, After], plugins=[plugin])
    rec = r.steps["dnc"]
    assert (rec.status, rec.error_category, rec.attempts) == ("failed", "permanent", 1)
    assert "not treated as clean" in (rec.error or "") and r.status == "failed" and "after" not in r.data


@pytest.mark.parametrize(("status", "category"), [(400, "bad_request"), (401, "auth")])
async def test_dncscrub_documented_errors(httpserver: HTTPServer, status: int, category: str) -> None:
    serve_scrub(httpserver, "5039367187", "Invalid or missing API key" if status == 401 else "bad parameters",
                status=status)
    r = await run_station(DNCScrubApiStation, {"phone": "5039367187"}, settings=scrub_settings(httpserver),
                          plugins=[plugin])
    assert (r.record.status, r.record.error_category, r.record.attempts, r.record.cost) == (
        "failed", category, 1, 0)
    assert SCRUB_KEY not in (r.record.error or "")


async def test_dncscrub_5xx_is_retried_then_recorded_unbilled(httpserver: HTTPServer) -> None:
    serve_scrub(httpserver, "5039367187", "oops", status=503)
    r = await run_station(DNCScrubApiStation, {"phone": "5039367187"}, settings=scrub_settings(httpserver),
                          plugins=[plugin])
    assert (r.record.status, r.record.error_category, r.record.attempts, r.result.total_cost) == (
        "failed", "server_error", 3, 0)


async def test_dncscrub_answer_without_the_number_is_a_bad_answer(httpserver: HTTPServer) -> None:
    serve_scrub(httpserver, "5039367187", scrub_records("7075276405"))
    r = await run_station(DNCScrubApiStation, {"phone": "5039367187"}, settings=scrub_settings(httpserver),
                          plugins=[plugin])
    assert (r.record.status, r.record.error_category) == ("failed", "server_error")
    assert "none for the number asked" in (r.record.error or "")


async def test_dncscrub_key_only_in_its_header(httpserver: HTTPServer) -> None:
    serve_scrub(httpserver, "7075276405", scrub_records("7075276405"))
    await run_station(DNCScrubApiStation, {"phone": "7075276405"}, settings=scrub_settings(httpserver))
    [(req, _)] = httpserver.log
    assert req.headers["loginId"] == SCRUB_KEY and SCRUB_KEY not in req.full_path


class TestDNCScrubApiStandard(StationTests):
    """The documented litigator record of 503-936-7187."""

    station_class = DNCScrubApiStation
    sample_lead = {"phone": "+15039367187", "phone_valid": True}
    settings = {"api_key": SCRUB_KEY, "base_url": "{vendor_url}", "price": PRICE, "allow_hosts": ["127.0.0.1"]}
    fake_responses = {"/app/main/rpc/scrub": Reply.json([SCRUB["scrub_response"][0]])}
    expected_fields = {"dnc_listed": True, "dnc_lists": ["litigator"]}


def test_the_free_only_route_keeps_the_offline_registry() -> None:
    route = yaml.safe_load((Path(__file__).resolve().parents[3] / "routes" / "free-only.yaml").read_text())
    stations = [s["station"] for s in route["steps"]]
    assert "DNCScrubStation" in stations
    assert not {"BlacklistAllianceStation", "DNCScrubApiStation", "RealValidationDNCStation"} & set(stations)


def test_the_api_stations_are_paid_gates_that_declare_their_hosts() -> None:
    from waystation_dnc.plugin import register_stations

    names = [s.name for s in register_stations()]
    assert {"BlacklistAllianceStation", "DNCScrubApiStation"} <= set(names)
    for cls in (BlacklistAllianceStation, DNCScrubApiStation):
        assert cls.is_paid() and cls.gate is True and cls.vendor_hosts
