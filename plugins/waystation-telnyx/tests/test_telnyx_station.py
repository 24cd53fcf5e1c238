"""TelnyxGatekeepStation through the real engine against a Telnyx fake on 127.0.0.1."""

from __future__ import annotations

import json
import re
from types import MappingProxyType
from typing import Any

import pytest
import waystation.testing
import yaml
from pytest_httpserver import HTTPServer
from waystation import Outcome, RouteError, Station, StepContext, hookimpl
from waystation.testing import run_route, run_station
from waystation_telnyx import TelnyxGatekeepStation, TelnyxSettings, gate_decision, plugin, to_e164
from werkzeug import Request, Response

from .conftest import KEY, assert_key_only_in_auth_header, example

MOBILE = "+13125550142"
LANDLINE = "+12125550188"
QUICKSTART = "+18665552368"
INVALID = "+5555555555"
CANADIAN = "+14165550123"


def plain(run: Any) -> dict[str, Any]:
    """The step's fields without its dial evidence (tested in test_dial_evidence below)."""
    return {k: v for k, v in run.fields.items() if k != "dial_evidence"}


def path(number: str) -> str:
    return f"/v2/number_lookup/{number}"


def serve(server: HTTPServer, number: str, name: str, query: str | None = "type=carrier") -> None:
    """Serve the documented exchange ``name`` for ``number`` (permanently)."""
    resp = example(name)["response"]
    server.expect_request(path(number), method="GET", query_string=query).respond_with_json(
        resp["body"], status=resp["status"], headers=resp.get("headers", {}).copy() | {
            "Content-Type": "application/json"})


def no_leak(result: Any) -> None:
    assert KEY not in result.model_dump_json()


class AfterGate(Station):
    """A free step that runs after the gate (to show SKIP_REMAINING stopping it)."""

    name = "AfterGate"
    requires = ("phone",)
    provides = MappingProxyType({"after_gate": str})
    calls: list[str] = []

    async def process(self, ctx: StepContext) -> Outcome:
        type(self).calls.append(ctx.lead_id)
        return Outcome({"after_gate": "ran"})


def gate_route(settings: dict[str, Any], budget: float | None = None) -> str:
    route: dict[str, Any] = {
        "name": "telnyx-gate",
        "steps": [
            {"id": "gate", "station": "TelnyxGatekeepStation", "settings": settings},
            {"id": "next", "station": "AfterGate", "after": ["gate"]},
        ],
    }
    if budget is not None:
        route["budget"] = budget
    return yaml.safe_dump(route)


class RetryLog:
    """Records the engine's on_retry calls (attempt, error category, delay)."""

    def __init__(self) -> None:
        self.retries: list[tuple[int, str, float]] = []

    @hookimpl
    def on_retry(self, attempt: int, error: BaseException, delay: float) -> None:
        self.retries.append((attempt, type(error).__name__, delay))


# ----------------------------------------------------------------------------- success shapes


async def test_mobile_carrier_lookup(telnyx: HTTPServer, settings: dict[str, Any]) -> None:
    serve(telnyx, MOBILE, "constructed_carrier_mobile")
    run = await run_station(TelnyxGatekeepStation, {"phone": MOBILE}, settings=settings, plugins=[plugin])
    assert run.result.status == "succeeded"
    assert plain(run) == {
        "line_type": "mobile",
        "carrier": "CELLCO PARTNERSHIP DBA VERIZON WIRELESS - IL",
        "normalized_carrier": "Verizon",
        "ported": False,
        "phone_valid": True,
    }
    assert run.record.cost == pytest.approx(0.0025)
    assert run.result.costs == {"TelnyxGatekeepStation": pytest.approx(0.0025)}
    assert run.record.attempts == 1
    assert len(telnyx.log) == 1
    assert_key_only_in_auth_header(telnyx)
    no_leak(run.result)


async def test_docs_quickstart_numeric_mnc_and_caller_name(telnyx: HTTPServer,
                                                           settings: dict[str, Any]) -> None:
    """The docs' example (mobile_network_code is a number there, no valid_number); both data sets
    requested, one request each (the spec's ``type`` is one value)."""
    serve(telnyx, QUICKSTART, "docs_quickstart", query="type=carrier")
    serve(telnyx, QUICKSTART, "docs_quickstart", query="type=caller-name")
    run = await run_station(TelnyxGatekeepStation, {"phone": "(866) 555-2368"},
                            settings=settings | {"caller_name": True}, plugins=[plugin])
    assert plain(run) == {
        "line_type": "voip",
        "carrier": "Telnyx/4",
        "normalized_carrier": None,
        "ported": True,
        "phone_valid": True,
        "caller_name": "TELNYX LLC",
    }
    assert run.record.cost == pytest.approx(0.0055)
    assert [r.query_string for r, _ in telnyx.log] == [b"type=carrier", b"type=caller-name"]
    assert "normalized_carrier" not in run.result.data
    assert "no normalized_carrier" in run.record.misses["normalized_carrier"]
    assert run.result.data["caller_name"] == "TELNYX LLC"
    assert run.result.status == "succeeded"   # voip is not rejected by default
    assert_key_only_in_auth_header(telnyx)


async def test_caller_name_only_fixed_line_is_gated(telnyx: HTTPServer, settings: dict[str, Any]) -> None:
    """carrier: null in the answer; the line type comes from portability; fixed line stops the route."""
    serve(telnyx, LANDLINE, "constructed_caller_name_fixed_line", query="type=caller-name")
    AfterGate.calls = []
    [result] = await run_route(
        gate_route(settings | {"carrier": False, "caller_name": True}), [{"phone": LANDLINE}],
        [TelnyxGatekeepStation, AfterGate], plugins=[plugin])
    gate = result.steps["gate"]
    assert gate.status == "succeeded"
    assert result.data["line_type"] == "fixed line"
    assert result.data["caller_name"] == "SMITH JOHN"
    assert result.data["carrier"] == "Verizon New York Inc."     # portability.spid_carrier_name
    assert "normalized_carrier" not in result.data
    assert gate.cost == pytest.approx(0.003)
    assert result.status == "stopped"
    assert result.reason == "telnyx: line type 'fixed line' is rejected (reject_line_types)"
    assert gate.stop == "skip_remaining"
    assert result.steps["next"].status == "skipped" and result.steps["next"].reason == "stopped"
    assert AfterGate.calls == []
    no_leak(result)


async def test_mobile_passes_the_gate(telnyx: HTTPServer, settings: dict[str, Any]) -> None:
    serve(telnyx, MOBILE, "constructed_carrier_mobile")
    AfterGate.calls = []
    [result] = await run_route(gate_route(settings), [{"phone": MOBILE}], [TelnyxGatekeepStation, AfterGate],
                               plugins=[plugin])
    assert result.status == "succeeded"
    assert result.steps["next"].status == "succeeded"
    assert result.data["after_gate"] == "ran"
    assert len(AfterGate.calls) == 1


async def test_reject_line_types_setting(telnyx: HTTPServer, settings: dict[str, Any]) -> None:
    serve(telnyx, MOBILE, "constructed_carrier_mobile")
    AfterGate.calls = []
    [result] = await run_route(gate_route(settings | {"reject_line_types": ["mobile"]}), [{"phone": MOBILE}],
                               [TelnyxGatekeepStation, AfterGate], plugins=[plugin])
    assert result.status == "stopped"
    assert "'mobile' is rejected" in (result.reason or "")
    assert AfterGate.calls == []


def test_unknown_line_type_in_route_is_refused_at_compile() -> None:
    with pytest.raises(RouteError, match="unknown line type 'landline'"):
        from waystation import Engine
        Engine.from_text(gate_route({"reject_line_types": ["landline"]}), [TelnyxGatekeepStation, AfterGate])


# ----------------------------------------------------------------------------- invalid numbers


@pytest.mark.parametrize(("on_invalid", "status", "next_status"), [
    ("skip_remaining", "stopped", "skipped"),
    ("fail", "failed", "skipped"),
    ("continue", "succeeded", "succeeded"),
])
async def test_invalid_number(telnyx: HTTPServer, settings: dict[str, Any], on_invalid: str, status: str,
                              next_status: str) -> None:
    """The live answer for an invalid number: null sub-objects, valid_number false, nnid_override."""
    serve(telnyx, INVALID, "live_invalid_number")
    [result] = await run_route(gate_route(settings | {"on_invalid": on_invalid}), [{"phone": INVALID}],
                               [TelnyxGatekeepStation, AfterGate], plugins=[plugin])
    gate = result.steps["gate"]
    assert gate.status == "succeeded"
    assert result.data["phone_valid"] is False
    assert "line_type" not in result.data
    assert gate.cost == pytest.approx(0.0025)    # the lookup was made and is billed
    assert result.status == status
    assert result.steps["next"].status == next_status
    if status != "succeeded":
        assert result.reason == "telnyx: the phone number is not valid"


async def test_unparseable_phone_is_invalid_without_a_call(telnyx: HTTPServer,
                                                           settings: dict[str, Any]) -> None:
    run = await run_station(TelnyxGatekeepStation, {"phone": "12-34"}, settings=settings, plugins=[plugin])
    assert run.fields == {"phone_valid": False}
    assert run.record.cost == 0
    assert run.result.status == "stopped"
    assert telnyx.log == []


# ----------------------------------------------------------------------------- vendor errors


async def test_canadian_422_is_a_reasoned_miss(telnyx: HTTPServer, settings: dict[str, Any]) -> None:
    serve(telnyx, CANADIAN, "unprocessable")
    run = await run_station(TelnyxGatekeepStation, {"phone": CANADIAN}, settings=settings, plugins=[plugin])
    assert run.record.status == "succeeded"
    assert run.fields == {}
    assert "is a Canadian number" in run.record.misses["line_type"]
    assert "10015" in run.record.misses["line_type"]
    assert run.record.cost == 0
    assert run.record.attempts == 1
    # no line type: 'unknown', rejected by default, with Telnyx's explanation in the reason
    assert run.result.status == "stopped"
    assert "line type 'unknown' is rejected" in (run.result.reason or "")
    assert "Canadian" in (run.result.reason or "")


async def test_422_as_permanent_error_by_setting(telnyx: HTTPServer, settings: dict[str, Any]) -> None:
    serve(telnyx, CANADIAN, "unprocessable")
    run = await run_station(TelnyxGatekeepStation, {"phone": CANADIAN},
                            settings=settings | {"on_unprocessable": "fail"}, plugins=[plugin])
    assert run.record.status == "failed"
    assert run.record.error_category == "permanent"
    assert run.record.attempts == 1
    assert len(telnyx.log) == 1


async def test_401_is_auth_error_not_retried_and_opens_the_breaker(telnyx: HTTPServer,
                                                                   settings: dict[str, Any]) -> None:
    resp = example("unauthorized")["response"]
    telnyx.expect_request(path(MOBILE)).respond_with_json(resp["body"], status=401)
    leads = [{"id": f"lead-{i}", "phone": MOBILE} for i in range(8)]
    route = gate_route(settings)
    results = await run_route(route, leads, [TelnyxGatekeepStation, AfterGate], plugins=[plugin])
    first = results[0].steps["gate"]
    assert first.status == "failed"
    assert first.error_category == "auth"
    assert first.attempts == 1
    assert "10009 Authentication failed" in (first.error or "")
    assert KEY not in (first.error or "")
    # the breaker opens (at the latest after failure_threshold=5 failures); no call goes out after
    assert len(telnyx.log) <= TelnyxGatekeepStation.breaker.failure_threshold  # type: ignore[union-attr]
    assert results[-1].steps["gate"].status == "skipped"
    assert results[-1].steps["gate"].reason == "breaker_open"
    assert len(telnyx.log) == sum(1 for r in results if r.steps["gate"].status == "failed")
    assert_key_only_in_auth_header(telnyx)
    for r in results:
        no_leak(r)


async def test_429_honours_x_ratelimit_reset_then_succeeds(telnyx: HTTPServer,
                                                           settings: dict[str, Any]) -> None:
    limited = example("rate_limited")["response"]
    limited["body"]["errors"][0]["code"] = 10011         # numeric code, as live answers may send
    headers = {"x-ratelimit-limit": "100", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "7"}
    telnyx.expect_oneshot_request(path(MOBILE)).respond_with_json(limited["body"], status=429,
                                                                  headers=headers)
    serve(telnyx, MOBILE, "constructed_carrier_mobile")
    retries = RetryLog()
    run = await run_station(TelnyxGatekeepStation, {"phone": MOBILE}, settings=settings,
                            plugins=[plugin, retries])
    assert run.record.status == "succeeded"
    assert run.record.attempts == 2
    assert retries.retries == [(1, "ThrottledError", 7.0)]
    assert run.record.cost == pytest.approx(0.0025)   # charged once: the 429 is free
    assert len(telnyx.log) == 2
    assert_key_only_in_auth_header(telnyx)


async def test_5xx_is_retried_up_to_max_attempts(telnyx: HTTPServer, settings: dict[str, Any]) -> None:
    telnyx.expect_request(path(MOBILE)).respond_with_json(
        {"errors": [{"code": "10007", "title": "Unexpected error"}]}, status=503)
    run = await run_station(TelnyxGatekeepStation, {"phone": MOBILE}, settings=settings, plugins=[plugin])
    assert run.record.status == "failed"
    assert run.record.error_category == "server_error"
    assert run.record.attempts == TelnyxGatekeepStation.retry.max_attempts == 3
    assert run.record.cost == 0
    assert len(telnyx.log) == 3
    assert run.result.total_cost == 0


async def test_5xx_then_success(telnyx: HTTPServer, settings: dict[str, Any]) -> None:
    telnyx.expect_oneshot_request(path(MOBILE)).respond_with_data("upstream error", status=502)
    serve(telnyx, MOBILE, "constructed_carrier_mobile")
    run = await run_station(TelnyxGatekeepStation, {"phone": MOBILE}, settings=settings, plugins=[plugin])
    assert run.record.status == "succeeded"
    assert run.record.attempts == 2
    assert run.fields["line_type"] == "mobile"


@pytest.mark.parametrize("body", ["<html><body>Bad gateway</body></html>", '{"data": "nope"}', "{trunc"])
async def test_garbage_200_is_transient(telnyx: HTTPServer, settings: dict[str, Any], body: str) -> None:
    telnyx.expect_oneshot_request(path(MOBILE)).respond_with_data(body, status=200,
                                                                  content_type="application/json")
    serve(telnyx, MOBILE, "constructed_carrier_mobile")
    run = await run_station(TelnyxGatekeepStation, {"phone": MOBILE}, settings=settings, plugins=[plugin])
    assert run.record.status == "succeeded"
    assert run.record.attempts == 2
    assert run.record.cost == pytest.approx(0.0025)


async def test_402_is_quota_exhausted(telnyx: HTTPServer, settings: dict[str, Any]) -> None:
    telnyx.expect_request(path(MOBILE)).respond_with_json(
        {"errors": [{"code": 10010, "title": "Insufficient balance"}]}, status=402)
    leads = [{"id": "a", "phone": MOBILE}, {"id": "b", "phone": MOBILE}]
    stations = [TelnyxGatekeepStation, AfterGate]
    results = await run_route(gate_route(settings), leads, stations, plugins=[plugin])
    assert results[0].steps["gate"].error_category == "exhausted"
    assert results[0].steps["gate"].attempts == 1
    assert results[1].steps["gate"].reason == "breaker_open"
    assert len(telnyx.log) == 1


async def test_missing_key_fails_without_a_request(telnyx: HTTPServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TELNYX_API_KEY", raising=False)
    run = await run_station(TelnyxGatekeepStation, {"phone": MOBILE},
                            settings={"base_url": telnyx.url_for("/v2")}, plugins=[plugin])
    assert run.record.status == "failed"
    assert run.record.error_category == "auth"
    assert "TELNYX_API_KEY" in (run.record.error or "")
    assert telnyx.log == []


async def test_key_from_environment(telnyx: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELNYX_API_KEY", KEY)
    monkeypatch.setenv("WAYSTATION_TELNYX_BASE_URL", telnyx.url_for("/v2"))
    monkeypatch.setenv("WAYSTATION_TELNYX_ALLOW_HOSTS", "127.0.0.1")
    serve(telnyx, MOBILE, "constructed_carrier_mobile")
    run = await run_station(TelnyxGatekeepStation, {"phone": MOBILE}, plugins=[plugin])
    assert run.fields["line_type"] == "mobile"
    assert_key_only_in_auth_header(telnyx)
    no_leak(run.result)


async def test_key_echoed_by_vendor_is_redacted(telnyx: HTTPServer, settings: dict[str, Any]) -> None:
    """Even a vendor that echoes the key in an error never gets it into the lead's result."""
    def handler(request: Request) -> Response:
        body = {"errors": [{"code": "10009", "title": "Authentication failed",
                            "detail": f"token {request.headers['Authorization']} rejected"}]}
        return Response(json.dumps(body), status=401, content_type="application/json")

    telnyx.expect_request(path(MOBILE)).respond_with_handler(handler)
    run = await run_station(TelnyxGatekeepStation, {"phone": MOBILE}, settings=settings, plugins=[plugin])
    assert run.record.status == "failed"
    assert "***" in (run.record.error or "")
    no_leak(run.result)


async def test_budget_too_small_skips_before_any_call(telnyx: HTTPServer, settings: dict[str, Any]) -> None:
    # carrier + caller name reserve $0.0055, more than the $0.005 budget
    run = await run_station(TelnyxGatekeepStation, {"phone": MOBILE}, settings={**settings, "caller_name": True},
                            budget=0.005, plugins=[plugin])
    assert run.record.status == "skipped"
    assert run.record.reason == "budget"
    assert telnyx.log == []


async def test_reserved_cost_follows_the_data_sets_requested(telnyx: HTTPServer, settings: dict[str, Any]) -> None:
    """Carrier only: the reservation is the carrier price, so a $0.0025 budget is enough."""
    serve(telnyx, MOBILE, "constructed_carrier_mobile")
    run = await run_station(TelnyxGatekeepStation, {"phone": MOBILE}, settings=settings, budget=0.0025,
                            plugins=[plugin])
    assert run.record.status == "succeeded"
    assert run.result.total_cost == pytest.approx(0.0025)


async def test_reserved_cost_follows_step_cost_override(telnyx: HTTPServer, settings: dict[str, Any]) -> None:
    """With only carrier data bought, ``cost: 0.0025`` on the step reserves exactly that."""
    serve(telnyx, MOBILE, "constructed_carrier_mobile")
    run = await run_station(TelnyxGatekeepStation, {"phone": MOBILE}, settings=settings, budget=0.0025,
                            step={"cost": 0.0025}, plugins=[plugin])
    assert run.record.status == "succeeded"
    assert run.result.total_cost == pytest.approx(0.0025)
    assert run.result.errors == []


# ----------------------------------------------------------------------------- units


def test_to_e164() -> None:
    assert to_e164("+1 (312) 555-0142") == "+13125550142"
    assert to_e164("312.555.0142") == "+13125550142"
    assert to_e164("13125550142") == "+13125550142"
    assert to_e164("555-0142") is None
    assert to_e164(None) is None


def test_gate_decision_unknown_and_defaults() -> None:
    s = TelnyxSettings()
    assert gate_decision(s, Outcome({"line_type": "mobile", "phone_valid": True})) is None
    stop = gate_decision(s, Outcome({"line_type": "toll free", "phone_valid": True}))
    assert stop is not None and stop[0].value == "skip_remaining"
    assert gate_decision(TelnyxSettings(reject_line_types=[]), Outcome({})) is None


def test_prices_and_declared_cost() -> None:
    assert TelnyxSettings().lookup_price() == pytest.approx(0.0025)
    assert TelnyxSettings(caller_name=True).lookup_price() == pytest.approx(0.0055)
    assert TelnyxSettings(carrier=False).lookup_price() == pytest.approx(0.0015)
    assert TelnyxGatekeepStation.cost >= TelnyxSettings(caller_name=True).lookup_price()


def test_plugin_import_does_not_import_httpx() -> None:
    import subprocess
    import sys
    code = "import sys, waystation_telnyx.plugin; sys.exit(1 if 'httpx' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize("caller_name", [False, True])
def test_contract(caller_name: bool) -> None:
    """The core's contract check: declarations, reads, cost, cancellation, secrets."""
    check = waystation.testing.check_station_contract
    body = example("docs_quickstart")["response"]["body"]
    report = check(TelnyxGatekeepStation, {"phone": QUICKSTART},
                   settings={"api_key": KEY, "base_url": "{vendor_url}/v2", "caller_name": caller_name,
                             "allow_hosts": ["127.0.0.1"]},
                   fake_responses={f"/v2/number_lookup/{QUICKSTART}": body})
    assert report.violations == []
    assert report.requests == (2 if caller_name else 1)  # one request per data set
    assert report.outcome is not None and report.outcome.fields["line_type"] == "voip"


async def test_base_lookup_when_no_data_set(telnyx: HTTPServer, settings: dict[str, Any]) -> None:
    """carrier and caller_name off: the base lookup (no ``type``), priced at lrn_price; the line
    type then comes from portability."""
    serve(telnyx, LANDLINE, "constructed_caller_name_fixed_line", query="")
    run = await run_station(TelnyxGatekeepStation, {"phone": LANDLINE},
                            settings=settings | {"carrier": False}, plugins=[plugin])
    assert run.fields["line_type"] == "fixed line"
    assert "caller_name" not in run.fields
    assert run.record.cost == pytest.approx(0.0015)
    [(request, _)] = telnyx.log
    assert request.query_string == b""


async def test_connection_refused_is_transient_and_retried() -> None:
    import socket
    with socket.socket() as sock:          # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = await run_station(TelnyxGatekeepStation, {"phone": MOBILE},
                            settings={"api_key": KEY, "base_url": f"http://127.0.0.1:{port}/v2",
                                      "allow_hosts": ["127.0.0.1"]},
                            plugins=[plugin])
    assert run.record.status == "failed"
    assert run.record.error_category == "transient"
    assert run.record.attempts == 3
    assert "ConnectError" in (run.record.error or "")
    no_leak(run.result)


# ----------------------------------------------------------------------------- issue #13 fixes


def spec_mock(server: HTTPServer, record: dict[str, Any]) -> None:
    """A mock generated from the published spec: ``type`` is one enum value; a repeated ``type``
    is answered 422 with ``source.parameter: type``, as a spec-validating server does."""
    def handler(request: Request) -> Response:
        types = request.args.getlist("type")
        if len(types) > 1 or any(t not in ("carrier", "caller-name") for t in types):
            body = {"errors": [{"code": "10015", "title": "Invalid parameter", "source": {"parameter": "type"},
                                "detail": "type must be one of carrier, caller-name"}]}
            return Response(json.dumps(body), status=422, content_type="application/json")
        return Response(json.dumps(record), content_type="application/json")

    server.expect_request(re.compile(r"^/v2/number_lookup/.+$")).respond_with_handler(handler)


async def test_carrier_and_caller_name_follow_the_spec_one_type_per_request(telnyx: HTTPServer,
                                                                           settings: dict[str, Any]) -> None:
    spec_mock(telnyx, example("docs_quickstart")["response"]["body"])
    AfterGate.calls = []
    [result] = await run_route(gate_route(settings | {"caller_name": True}), [{"id": "q", "phone": QUICKSTART}],
                               [TelnyxGatekeepStation, AfterGate], plugins=[plugin])
    gate = result.steps["gate"]
    assert (gate.status, gate.attempts, gate.cost) == ("succeeded", 1, pytest.approx(0.0055))
    assert result.data["line_type"] == "voip" and result.data["caller_name"] == "TELNYX LLC"
    assert [r.args.getlist("type") for r, _ in telnyx.log] == [["carrier"], ["caller-name"]]
    assert result.status == "succeeded" and AfterGate.calls == ["q"]


async def test_a_422_about_our_own_request_fails_the_step_never_a_verdict(telnyx: HTTPServer,
                                                                         settings: dict[str, Any]) -> None:
    body = {"errors": [{"code": "10015", "title": "Invalid parameter", "source": {"parameter": "type"},
                        "detail": "type is invalid"}]}
    telnyx.expect_request(path(MOBILE)).respond_with_json(body, status=422)
    AfterGate.calls = []
    route = yaml.safe_load(gate_route(settings))
    route["steps"][0]["on_error"] = "fail"
    [result] = await run_route(yaml.safe_dump(route), [{"id": "m", "phone": MOBILE}],
                               [TelnyxGatekeepStation, AfterGate], plugins=[plugin])
    gate = result.steps["gate"]
    assert (gate.status, gate.error_category, gate.attempts, gate.cost) == ("failed", "bad_request", 1, 0)
    assert "configuration error" in (gate.error or "") and "10015" in (gate.error or "")
    # the lead is held, not let through (a configuration error: fix it, then run --resume)
    assert result.status == "held" and AfterGate.calls == []
    assert "line_type" not in result.data and gate.misses == {}
    assert TelnyxGatekeepStation.gate is True


async def test_a_429_with_a_30_second_reset_defers_the_lead_instead_of_wasting_retries(
        telnyx: HTTPServer, settings: dict[str, Any]) -> None:
    limited = example("rate_limited")["response"]
    headers = {"x-ratelimit-limit": "100", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "30"}
    telnyx.expect_oneshot_request(path(MOBILE)).respond_with_json(limited["body"], status=429, headers=headers)
    serve(telnyx, MOBILE, "constructed_carrier_mobile")
    retries = RetryLog()
    run = await run_station(TelnyxGatekeepStation, {"phone": MOBILE}, settings=settings, plugins=[plugin, retries])
    # the reset (30 s) is longer than retry.max_delay (10 s): no retry 10 s apart, the lead waits
    assert (run.result.status, run.record.status, run.record.reason) == ("deferred", "pending", "deferred")
    assert retries.retries == [] and len(telnyx.log) == 1 and run.result.total_cost == 0
    assert run.result.retry_at is not None and "wait 30 s" in (run.result.reason or "")
    assert run.record.attempts == 0  # the 429 did not use up an attempt


async def test_a_429_on_the_caller_name_request_books_the_carrier_lookup_once(telnyx: HTTPServer,
                                                                            settings: dict[str, Any]) -> None:
    serve(telnyx, QUICKSTART, "docs_quickstart", query="type=carrier")
    limited = example("rate_limited")["response"]
    telnyx.expect_oneshot_request(path(QUICKSTART), query_string="type=caller-name").respond_with_json(
        limited["body"], status=429, headers={"x-ratelimit-reset": "2"})
    serve(telnyx, QUICKSTART, "docs_quickstart", query="type=caller-name")
    run = await run_station(TelnyxGatekeepStation, {"phone": QUICKSTART}, settings=settings | {"caller_name": True},
                            plugins=[plugin])
    assert run.record.status == "succeeded" and run.record.attempts == 2
    assert [r.args["type"] for r, _ in telnyx.log] == ["carrier", "caller-name", "caller-name"]
    assert run.record.cost == pytest.approx(0.0055)  # carrier once (billed), caller name once
    assert run.fields["caller_name"] == "TELNYX LLC"


async def test_normalized_carrier_missing_has_a_reason(telnyx: HTTPServer, settings: dict[str, Any]) -> None:
    body = example("constructed_carrier_mobile")["response"]["body"]
    del body["data"]["carrier"]["normalized_carrier"]
    telnyx.expect_request(path(MOBILE)).respond_with_json(body)
    run = await run_station(TelnyxGatekeepStation, {"phone": MOBILE}, settings=settings, plugins=[plugin])
    assert "normalized_carrier" not in run.fields or run.fields["normalized_carrier"] is None
    assert "no normalized_carrier" in run.record.misses["normalized_carrier"]
    assert run.result.status == "succeeded" and run.record.cost == pytest.approx(0.0025)


async def test_the_key_is_not_sent_to_a_host_the_route_did_not_allow(telnyx: HTTPServer,
                                                                    settings: dict[str, Any]) -> None:
    serve(telnyx, MOBILE, "constructed_carrier_mobile")
    run = await run_station(TelnyxGatekeepStation, {"phone": MOBILE},
                            settings={k: v for k, v in settings.items() if k != "allow_hosts"}, plugins=[plugin])
    assert (run.record.status, run.record.error_category) == ("failed", "auth")
    assert "allow_hosts" in (run.record.error or "") and telnyx.log == []
    no_leak(run.result)


async def test_a_huge_or_gzip_bomb_answer_is_a_reasoned_failure(telnyx: HTTPServer,
                                                                settings: dict[str, Any]) -> None:
    import gzip
    bomb = gzip.compress(b" " * (20 * 1024 * 1024))
    telnyx.expect_request(path(MOBILE)).respond_with_data(bomb, headers={"Content-Encoding": "gzip"},
                                                          content_type="application/json")
    run = await run_station(TelnyxGatekeepStation, {"phone": MOBILE},
                            settings=settings | {"max_response_bytes": 1024 * 1024}, plugins=[plugin])
    assert (run.record.status, run.record.error_category, run.record.attempts) == ("failed", "permanent", 1)
    assert "1,048,576-byte cap" in (run.record.error or "") and run.result.total_cost == 0


async def test_dial_evidence_of_the_line_type(telnyx: HTTPServer, settings: dict[str, Any]) -> None:
    from waystation.dial import evidence as ev

    serve(telnyx, MOBILE, "constructed_carrier_mobile")
    run = await run_station(TelnyxGatekeepStation, {"phone": MOBILE}, settings=settings, plugins=[plugin])
    (item,) = ev.items(run.fields["dial_evidence"])
    assert (item.check, item.result, item.phone) == ("line_type", "wireless", "3125550142")
    assert item.source == {"vendor": "telnyx"} and item.detail == {"line_type": "mobile"}
    assert ev.parse_time(item.expires_at) - ev.parse_time(item.checked_at) == ev.expires_after(
        item.checked_at, 31) - ev.parse_time(item.checked_at)
