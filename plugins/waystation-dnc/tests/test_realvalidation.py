"""RealValidationDNCStation against a real HTTP server on 127.0.0.1 serving the vendor's shapes
(response bodies as documented at realphonevalidation.com/api-documentation/dnc-lookup-api-doc)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from waystation.testing import run_station
from waystation_dnc import plugin
from waystation_dnc.realvalidation import RealValidationDNCStation

TOKEN = "rv-token-5f1c9e"
CLEAN = {"RESPONSECODE": "OK", "RESPONSEMSG": {}, "national_dnc": "N", "state_dnc": "N", "dma": "N",
         "litigator": "N", "iscell": "N", "id": "4"}


def settings(server: HTTPServer, **extra: Any) -> dict[str, Any]:
    return {"token": TOKEN, "base_url": server.url_for("/rpvWebService"), "price": 0.004,
            "allow_hosts": ["127.0.0.1", "localhost"], **extra}


def answer(server: HTTPServer, body: Any, status: int = 200, oneshot: bool = False) -> None:
    query = {"phone": "2125550100", "token": TOKEN, "output": "json"}
    expect = server.expect_oneshot_request if oneshot else server.expect_request
    text = body if isinstance(body, str) else json.dumps(body)
    expect("/rpvWebService/DNCLookup.php", query_string=query).respond_with_data(
        text, status=status, content_type="application/json")


async def run(server: HTTPServer, **extra: Any) -> Any:
    return await run_station(RealValidationDNCStation, {"phone": "+12125550100"}, settings=settings(server, **extra),
                             step={"cost": 0.004}, plugins=[plugin])


async def test_listed_on_the_national_registry_stops_the_lead(httpserver: HTTPServer) -> None:
    answer(httpserver, {**CLEAN, "national_dnc": "Y"})
    r = await run(httpserver)
    assert {k: v for k, v in r.fields.items() if k != "dial_evidence"} == {"dnc_listed": True, "dnc_lists": ["federal"]}
    assert r.result.status == "stopped" and "federal" in (r.result.reason or "")
    assert r.record.cost == pytest.approx(0.004)


async def test_clean_number(httpserver: HTTPServer) -> None:
    answer(httpserver, CLEAN)
    r = await run(httpserver)
    assert r.fields == {"dnc_listed": False, "dnc_lists": []}
    assert r.result.status == "succeeded"


async def test_only_the_chosen_lists_count(httpserver: HTTPServer) -> None:
    answer(httpserver, {**CLEAN, "state_dnc": "Y", "litigator": "Y"})
    r = await run(httpserver, lists=["federal", "litigator"], on_listed="fail")
    assert r.fields["dnc_lists"] == ["litigator"]
    assert r.result.status == "failed"


async def test_a_question_mark_is_retried(httpserver: HTTPServer) -> None:
    answer(httpserver, {**CLEAN, "dma": "?"}, oneshot=True)
    answer(httpserver, CLEAN, oneshot=True)
    r = await run(httpserver)
    assert r.record.status == "succeeded" and r.record.attempts == 2


async def test_403_is_throttling_and_retried(httpserver: HTTPServer) -> None:
    answer(httpserver, "Forbidden", status=403, oneshot=True)
    answer(httpserver, "Forbidden", status=403, oneshot=True)
    answer(httpserver, {**CLEAN, "litigator": "Y"}, oneshot=True)
    r = await run(httpserver)
    assert r.record.attempts == 3 and r.fields["dnc_lists"] == ["litigator"]


@pytest.mark.parametrize("body", ["unauthorized", {"RESPONSECODE": "unauthorized", "RESPONSEMSG": {}},
                                  {"RESPONSECODE": "102", "RESPONSEMSG": "The user is invalid"}])
async def test_bad_token_is_not_retried_and_not_leaked(httpserver: HTTPServer, body: Any) -> None:
    answer(httpserver, body)
    r = await run(httpserver)
    assert r.record.status == "failed" and r.record.attempts == 1 and r.record.error_category == "auth"
    assert TOKEN not in (r.record.error or "") and TOKEN not in json.dumps(r.result.model_dump(mode="json"))


async def test_server_errors_are_retried_then_recorded(httpserver: HTTPServer) -> None:
    answer(httpserver, "oops", status=502)
    r = await run(httpserver)
    assert r.record.status == "failed" and r.record.attempts == 3
    assert r.record.error_category == "server_error" and TOKEN not in (r.record.error or "")


async def test_number_that_does_not_exist_is_a_paid_miss(httpserver: HTTPServer) -> None:
    answer(httpserver, {"RESPONSECODE": "invalid-phone", "RESPONSEMSG": "Phone number does not exist"})
    r = await run(httpserver)
    assert r.fields == {} and "does not exist" in r.record.misses["dnc_listed"]
    assert r.record.cost == pytest.approx(0.004)


async def test_no_token_fails_before_any_call(httpserver: HTTPServer) -> None:
    r = await run_station(RealValidationDNCStation, {"phone": "+12125550100"},
                          settings={"base_url": httpserver.url_for("/"), "price": 0.004})
    assert r.record.status == "failed" and "REALVALIDATION_TOKEN" in (r.record.error or "")
    assert len(httpserver.log) == 0


async def test_token_from_environment(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REALVALIDATION_TOKEN", TOKEN)
    answer(httpserver, CLEAN)
    r = await run_station(RealValidationDNCStation, {"phone": "(212) 555-0100"},
                          settings={"base_url": httpserver.url_for("/rpvWebService"), "price": 0.004,
                                    "allow_hosts": ["localhost"]})
    assert r.fields["dnc_listed"] is False


async def test_the_token_goes_only_to_realvalidation(httpserver: HTTPServer) -> None:
    answer(httpserver, CLEAN)
    r = await run_station(RealValidationDNCStation, {"phone": "+12125550100"},
                          settings={"token": TOKEN, "base_url": httpserver.url_for("/rpvWebService"), "price": 0.004},
                          step={"cost": 0.004}, plugins=[plugin])
    assert (r.record.status, r.record.error_category) == ("failed", "auth")
    assert "allow_hosts" in (r.record.error or "") and httpserver.log == []


def test_a_route_without_a_price_is_refused_before_any_lead() -> None:
    from waystation import Engine, RouteError

    text = "name: r\nsteps:\n  - station: RealValidationDNCStation\n    settings: {base_url: 'http://127.0.0.1:9'}\n"
    with pytest.raises(RouteError, match="price"):
        Engine.from_text(text, [RealValidationDNCStation])


async def test_a_listing_is_dial_evidence_and_a_clean_answer_is_not(httpserver: HTTPServer) -> None:
    from waystation.dial import evidence as ev

    answer(httpserver, {**CLEAN, "national_dnc": "Y", "dma": "Y"})
    r = await run(httpserver)
    items = {e.check: e for e in ev.items(r.fields["dial_evidence"])}
    assert set(items) == {"federal_dnc", "dma"}
    assert items["federal_dnc"].result == "listed" and items["federal_dnc"].phone == "2125550100"
    assert items["federal_dnc"].source == {"vendor": "RealValidation"}
    httpserver.clear()
    answer(httpserver, CLEAN)
    clean = await run(httpserver)
    assert "dial_evidence" not in clean.fields  # "not listed" by a vendor is no dial evidence (compliance.md)


async def test_a_vendor_listing_makes_the_verdict_no(httpserver: HTTPServer) -> None:
    from waystation.testing import run_route
    from waystation_dnc.verdict import DialEligibilityStation

    answer(httpserver, {**CLEAN, "litigator": "Y"})
    route = f"""
name: dial-api
input: [phone, phone_timezone]
steps:
  - station: RealValidationDNCStation
    cost: 0.004
    settings: {json.dumps({**settings(httpserver), "on_listed": "continue"})}
  - station: DialEligibilityStation
    settings: {{wireless: ignore}}
"""
    (res,) = await run_route(route, [{"phone": "+12125550100", "phone_timezone": "America/New_York"}],
                             [RealValidationDNCStation, DialEligibilityStation], plugins=[plugin])
    assert res.data["dial_eligible"] == "no" and "listed:litigator" in res.data["dial_reasons"]
