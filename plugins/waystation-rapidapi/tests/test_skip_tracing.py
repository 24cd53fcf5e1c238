"""SkipTracingStation through the real engine against a fake of the API on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import waystation.testing
import yaml
from pytest_httpserver import HTTPServer
from waystation import Station, hookimpl
from waystation.testing import run_route, run_station
from waystation_rapidapi import (
    LeadKeys,
    RapidApiStation,
    SkipTracingStation,
    plugin,
    rank_phones,
    score_candidate,
)
from waystation_rapidapi.models import Candidate, DetailsResponse
from waystation_rapidapi.station import parse_last_reported

from .conftest import KEY, assert_key_only_in_key_header, example, gateway

SEARCH = "/search/bynameaddress"
DETAILS = "/search/detailsbyID"
JOHN_DENVER = {"first_name": "John", "last_name": "Smith", "city": "Denver", "state": "CO",
               "zipcode": "80201", "age": 45}
FIRST_ID = "px0l4n6r2u8t1m0q9"
SECOND_ID = "p0r8l2n4u6m1t9q3x"


def serve_search(server: HTTPServer, path: str = SEARCH, body: Any = None, **query: str) -> None:
    server.expect_request(path, method="GET", query_string=query or None).respond_with_json(
        example("search_response") if body is None else body)


def serve_details(server: HTTPServer, peo_id: str = FIRST_ID, body: Any = None) -> None:
    server.expect_request(DETAILS, method="GET", query_string={"peo_id": peo_id}).respond_with_json(
        example("details_response") if body is None else body)


def requests_to(server: HTTPServer, path: str) -> list[Any]:
    return [req for req, _ in server.log if req.path == path]


def no_leak(result: Any) -> None:
    assert KEY not in result.model_dump_json()


class RetryLog:
    """Records the engine's on_retry calls."""

    def __init__(self) -> None:
        self.retries: list[tuple[int, str, float]] = []

    @hookimpl
    def on_retry(self, attempt: int, error: BaseException, delay: float) -> None:
        self.retries.append((attempt, type(error).__name__, delay))


# ----------------------------------------------------------------------------- the happy path


async def test_search_pick_details(rapid: HTTPServer, settings: dict[str, Any]) -> None:
    serve_search(rapid, name="John Smith", citystatezip="Denver, CO 80201")
    serve_details(rapid)
    run = await run_station(SkipTracingStation, JOHN_DENVER, settings=settings)
    assert run.record.status == "succeeded"
    assert run.fields == {
        "phone": "+13035550100",
        "phones": [
            {"number": "+13035550100", "type": "wireless", "last_reported": "2026-01",
             "provider": "T-Mobile USA"},
            {"number": "+17205550199", "type": "landline", "last_reported": "2019-06",
             "provider": "Qwest Corporation"},
        ],
        "emails": ["john.smith@example.com"],
        "current_address": "123 Main St, Denver, CO 80201",
        "age": 45,
        "match_score": 1.0,
    }
    assert run.result.data["phone"] == "+13035550100"
    # two calls, two costs
    assert run.record.cost == pytest.approx(0.02)
    assert run.result.costs == {"SkipTracingStation": pytest.approx(0.02)}
    assert run.record.attempts == 1
    assert [r.path for r, _ in rapid.log] == [SEARCH, DETAILS]
    assert rapid.log[1][0].args["peo_id"] == FIRST_ID
    assert_key_only_in_key_header(rapid)
    no_leak(run.result)


async def test_picks_the_candidate_that_agrees(rapid: HTTPServer, settings: dict[str, Any]) -> None:
    """In Aurora at 62, the second candidate is the one: name, place and age agree."""
    serve_search(rapid)
    serve_details(rapid, SECOND_ID)
    lead = {"full_name": "John Smith", "city": "Aurora", "state": "CO", "age": "62"}
    run = await run_station(SkipTracingStation, lead, settings=settings)
    assert run.record.status == "succeeded"
    assert requests_to(rapid, DETAILS)[0].args["peo_id"] == SECOND_ID
    assert run.fields["match_score"] == 1.0
    assert requests_to(rapid, SEARCH)[0].args["citystatezip"] == "Aurora, CO"


async def test_nobody_found_costs_the_search_only(rapid: HTTPServer, settings: dict[str, Any]) -> None:
    serve_search(rapid, body={"PeopleDetails": []})
    run = await run_station(SkipTracingStation, JOHN_DENVER, settings=settings)
    assert run.record.status == "succeeded"
    assert run.fields == {}
    assert run.record.misses["phone"] == "nobody found by /search/bynameaddress"
    assert run.record.cost == pytest.approx(0.01)
    assert run.record.hit is False
    assert requests_to(rapid, DETAILS) == []


async def test_missing_people_details_key_is_nobody(rapid: HTTPServer, settings: dict[str, Any]) -> None:
    serve_search(rapid, body={})
    run = await run_station(SkipTracingStation, JOHN_DENVER, settings=settings)
    assert run.fields == {}
    assert run.record.cost == pytest.approx(0.01)


async def test_no_good_candidate_is_a_reasoned_miss(rapid: HTTPServer, settings: dict[str, Any]) -> None:
    serve_search(rapid)
    lead = {"first_name": "Mary", "last_name": "Jones", "city": "Boston", "state": "MA"}
    run = await run_station(SkipTracingStation, lead, settings=settings)
    assert run.fields == {}
    assert "min_match_score 0.6" in run.record.misses["phone"]
    assert run.record.cost == pytest.approx(0.01)
    assert requests_to(rapid, DETAILS) == []


async def test_search_by_phone(rapid: HTTPServer, settings: dict[str, Any]) -> None:
    first = example("search_response")["PeopleDetails"][0]
    serve_search(rapid, "/search/byphone", body={"PeopleDetails": [first]}, phoneno="3035550100")
    serve_details(rapid)
    run = await run_station(SkipTracingStation, {"phone": "+13035550100"}, settings=settings)
    assert run.record.status == "succeeded"
    assert run.fields["emails"] == ["john.smith@example.com"]
    assert run.fields["match_score"] == 1.0
    assert [r.path for r, _ in rapid.log] == ["/search/byphone", DETAILS]


async def test_search_by_email(rapid: HTTPServer, settings: dict[str, Any]) -> None:
    first = example("search_response")["PeopleDetails"][0]
    serve_search(rapid, "/search/byemail", body={"PeopleDetails": [first]}, email="john.smith@example.com")
    serve_details(rapid)
    run = await run_station(SkipTracingStation, {"email": "john.smith@example.com", "last_name": "Smith"},
                            settings=settings)
    assert run.fields["phone"] == "+13035550100"
    assert [r.path for r, _ in rapid.log] == ["/search/byemail", DETAILS]


async def test_nothing_to_search_by(rapid: HTTPServer, settings: dict[str, Any]) -> None:
    run = await run_station(SkipTracingStation, {"city": "Denver"}, settings=settings)
    assert run.record.status == "succeeded"
    assert run.fields == {}
    assert run.record.cost == 0
    assert rapid.log == []


# ----------------------------------------------------------------------------- flaky details


async def test_flaky_details_retried_inside_without_a_new_search(rapid: HTTPServer,
                                                                  settings: dict[str, Any]) -> None:
    serve_search(rapid)
    rapid.expect_oneshot_request(DETAILS).respond_with_json({"message": "peo_id Not Valid"})
    rapid.expect_oneshot_request(DETAILS).respond_with_json({"message": "peo_id Not Valid"}, status=404)
    serve_details(rapid)
    run = await run_station(SkipTracingStation, JOHN_DENVER, settings=settings)
    assert run.record.status == "succeeded"
    assert run.fields["phone"] == "+13035550100"
    assert run.record.attempts == 1              # the engine did not retry the step
    assert len(requests_to(rapid, SEARCH)) == 1
    assert len(requests_to(rapid, DETAILS)) == 3
    assert run.record.cost == pytest.approx(0.02)
    assert_key_only_in_key_header(rapid)


async def test_flaky_details_billed_per_call_by_setting(rapid: HTTPServer, settings: dict[str, Any]) -> None:
    serve_search(rapid)
    rapid.expect_oneshot_request(DETAILS).respond_with_json({"message": "peo_id Not Valid"})
    serve_details(rapid)
    run = await run_station(SkipTracingStation, JOHN_DENVER,
                            settings=settings | {"details_retry_billed": True}, step={"cost": 0.05})
    assert run.record.cost == pytest.approx(0.03)
    assert run.result.errors == []


async def test_details_never_valid_is_a_miss_after_details_attempts(rapid: HTTPServer,
                                                                     settings: dict[str, Any]) -> None:
    serve_search(rapid)
    rapid.expect_request(DETAILS).respond_with_json({"message": "peo_id Not Valid"})
    run = await run_station(SkipTracingStation, JOHN_DENVER, settings=settings | {"details_attempts": 3})
    assert run.record.status == "succeeded"
    assert run.fields == {}
    assert "peo_id Not Valid" in run.record.misses["phone"]
    assert len(requests_to(rapid, DETAILS)) == 3
    assert len(requests_to(rapid, SEARCH)) == 1
    assert run.record.cost == pytest.approx(0.02)


async def test_details_5xx_retries_the_step_but_not_the_search(rapid: HTTPServer,
                                                               settings: dict[str, Any]) -> None:
    serve_search(rapid)
    rapid.expect_oneshot_request(DETAILS).respond_with_data("<html>502 Bad Gateway</html>", status=502)
    serve_details(rapid)
    run = await run_station(SkipTracingStation, JOHN_DENVER, settings=settings)
    assert run.record.status == "succeeded"
    assert run.record.attempts == 2
    assert len(requests_to(rapid, SEARCH)) == 1
    assert len(requests_to(rapid, DETAILS)) == 2
    assert run.record.cost == pytest.approx(0.02)      # one search, one details


async def test_search_bought_before_details_failed_for_good_is_still_booked(rapid: HTTPServer,
                                                                           settings: dict[str, Any]) -> None:
    serve_search(rapid)
    rapid.expect_request(DETAILS).respond_with_data("<html>502 Bad Gateway</html>", status=502)
    run = await run_station(SkipTracingStation, JOHN_DENVER, settings=settings)
    assert run.record.status == "failed"
    assert len(requests_to(rapid, SEARCH)) == 1
    assert run.record.cost == pytest.approx(0.01) and run.result.total_cost == pytest.approx(0.01)


# ----------------------------------------------------------------------------- gateway errors


@pytest.mark.parametrize("status", ["401", "403"])
async def test_gateway_auth_errors(rapid: HTTPServer, settings: dict[str, Any], status: str) -> None:
    rapid.expect_request(SEARCH).respond_with_json(gateway(status), status=int(status))
    run = await run_station(SkipTracingStation, JOHN_DENVER, settings=settings)
    assert run.record.status == "failed"
    assert run.record.error_category == "auth"
    assert run.record.attempts == 1
    assert gateway(status)["message"] in (run.record.error or "")
    assert run.record.cost == 0
    assert len(rapid.log) == 1
    no_leak(run.result)


def route(settings: dict[str, Any]) -> str:
    steps = [{"station": "SkipTracingStation", "settings": settings}]
    return yaml.safe_dump({"name": "skip", "steps": steps})


async def test_monthly_quota_429_is_exhausted_and_opens_the_breaker(rapid: HTTPServer,
                                                                    settings: dict[str, Any]) -> None:
    rapid.expect_request(SEARCH).respond_with_json(
        gateway("429_quota"), status=429,
        headers={"x-ratelimit-requests-limit": "100", "x-ratelimit-requests-remaining": "0",
                 "x-ratelimit-requests-reset": "1209600"})
    leads = [JOHN_DENVER | {"id": "a"}, JOHN_DENVER | {"id": "b"}]
    results = await run_route(route(settings), leads, [SkipTracingStation])
    first = results[0].steps["SkipTracingStation"]
    assert first.status == "failed"
    assert first.error_category == "exhausted"
    assert first.attempts == 1
    assert results[1].steps["SkipTracingStation"].reason == "breaker_open"
    assert len(rapid.log) == 1


async def test_remaining_header_tells_quota_from_rate(rapid: HTTPServer, settings: dict[str, Any]) -> None:
    rapid.expect_request(SEARCH).respond_with_json(
        gateway("429_rate"), status=429, headers={"x-ratelimit-requests-remaining": "0"})
    run = await run_station(SkipTracingStation, JOHN_DENVER, settings=settings)
    assert run.record.error_category == "exhausted"


async def test_rate_429_is_throttled_and_retried(rapid: HTTPServer, settings: dict[str, Any]) -> None:
    rapid.expect_oneshot_request(SEARCH).respond_with_json(
        gateway("429_rate"), status=429,
        headers={"x-ratelimit-requests-remaining": "4321", "x-ratelimit-requests-reset": "86400",
                 "x-ratelimit-remaining": "0", "x-ratelimit-reset": "3"})
    serve_search(rapid)
    serve_details(rapid)
    retries = RetryLog()
    run = await run_station(SkipTracingStation, JOHN_DENVER, settings=settings, plugins=[retries])
    assert run.record.status == "succeeded"
    assert run.record.attempts == 2
    assert retries.retries == [(1, "ThrottledError", 3.0)]
    assert run.record.cost == pytest.approx(0.02)
    assert_key_only_in_key_header(rapid)


async def test_402_is_exhausted(rapid: HTTPServer, settings: dict[str, Any]) -> None:
    rapid.expect_request(SEARCH).respond_with_json({"message": "Payment required"}, status=402)
    run = await run_station(SkipTracingStation, JOHN_DENVER, settings=settings)
    assert run.record.error_category == "exhausted"


@pytest.mark.parametrize("body", ["<html>oops</html>", "[1, 2", '["not", "an", "object"]'])
async def test_garbage_search_is_transient(rapid: HTTPServer, settings: dict[str, Any], body: str) -> None:
    rapid.expect_oneshot_request(SEARCH).respond_with_data(body, content_type="application/json")
    serve_search(rapid)
    serve_details(rapid)
    run = await run_station(SkipTracingStation, JOHN_DENVER, settings=settings)
    assert run.record.status == "succeeded"
    assert run.record.attempts == 2
    assert run.record.cost == pytest.approx(0.02)


async def test_5xx_exhausts_retries(rapid: HTTPServer, settings: dict[str, Any]) -> None:
    rapid.expect_request(SEARCH).respond_with_data("upstream down", status=503)
    run = await run_station(SkipTracingStation, JOHN_DENVER, settings=settings)
    assert run.record.status == "failed"
    assert run.record.error_category == "server_error"
    assert run.record.attempts == 3
    assert len(rapid.log) == 3
    assert run.result.total_cost == 0


async def test_other_4xx_is_permanent(rapid: HTTPServer, settings: dict[str, Any]) -> None:
    rapid.expect_request(SEARCH).respond_with_json({"message": "citystatezip is required"}, status=400)
    run = await run_station(SkipTracingStation, JOHN_DENVER, settings=settings)
    assert run.record.error_category == "bad_request"  # our request was wrong: never a verdict
    assert run.record.attempts == 1


# ----------------------------------------------------------------------------- budget, keys, names


async def test_both_calls_reserved_before_the_first(rapid: HTTPServer, settings: dict[str, Any]) -> None:
    """A budget that fits the search but not search + details: nothing is called."""
    run = await run_station(SkipTracingStation, JOHN_DENVER, settings=settings, budget=0.015)
    assert run.record.status == "skipped"
    assert run.record.reason == "budget"
    assert rapid.log == []


async def test_missing_key(rapid: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAPIDAPI_KEY", raising=False)
    base = rapid.url_for("").rstrip("/")
    run = await run_station(SkipTracingStation, JOHN_DENVER, settings={"base_url": base})
    assert run.record.error_category == "auth"
    assert "RAPIDAPI_KEY" in (run.record.error or "")
    assert rapid.log == []


async def test_key_from_environment_and_seed_alias(rapid: HTTPServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAPIDAPI_KEY", KEY)
    monkeypatch.setenv("WAYSTATION_RAPIDAPI_BASE_URL", rapid.url_for("").rstrip("/"))
    monkeypatch.setenv("WAYSTATION_RAPIDAPI_ALLOW_HOSTS", "127.0.0.1")
    serve_search(rapid)
    serve_details(rapid)
    run = await run_station(RapidApiStation, JOHN_DENVER)
    assert run.result.steps["RapidApiStation"].status == "succeeded"
    assert run.fields["phone"] == "+13035550100"
    assert_key_only_in_key_header(rapid)
    no_leak(run.result)


def test_plugin_registers_both_names() -> None:
    stations: list[type[Station]] = list(plugin.register_stations())
    assert [s.name for s in stations] == ["SkipTracingStation", "RapidApiStation"]


def test_plugin_import_does_not_import_httpx() -> None:
    import subprocess
    import sys
    code = "import sys, waystation_rapidapi.plugin; sys.exit(1 if 'httpx' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize("station", [SkipTracingStation, RapidApiStation])
def test_contract(station: type[Station]) -> None:
    """The core's contract check: declarations, reads, cost, cancellation, secrets."""
    report = waystation.testing.check_station_contract(
        station, {"first_name": "John", "last_name": "Smith", "city": "Denver", "state": "CO"},
        settings={"api_key": KEY, "base_url": "{vendor_url}", "allow_hosts": ["127.0.0.1"]},
        fake_responses={SEARCH: example("search_response"), DETAILS: example("details_response")})
    assert report.violations == []
    assert report.requests == 2
    assert report.outcome is not None and report.outcome.fields["phone"] == "+13035550100"


# ----------------------------------------------------------------------------- units


def test_score_candidate() -> None:
    keys = LeadKeys("John", "Smith", "John Smith", "Denver", "CO", None, None, None, 45)
    exact = Candidate.model_validate({"Name": "John A Smith", "Person ID": "x", "Age": 45,
                                      "Lives in": "Denver, CO"})
    other = Candidate.model_validate({"Name": "Johnny Smith", "Person ID": "y", "Age": "52",
                                      "Lives in": "Aurora, CO"})
    assert score_candidate(keys, exact, False) == 1.0
    # name 0.5*(last 1 + first prefix 0.6)=0.8, place: state only 0.4, age 7 years off: 0
    assert score_candidate(keys, other, False) == pytest.approx(0.5 * 0.8 + 0.3 * 0.4)
    nobody = LeadKeys(None, None, None, None, None, None, "+13035550100", None, None)
    assert score_candidate(nobody, other, True) == 1.0


def test_rank_phones_current_wireless_first() -> None:
    details = DetailsResponse.model_validate({
        "Person Details": [{"Telephone": "(720) 555-0199"}],
        "All Phone Details": [
            {"phone_number": "(303) 555-0111", "phone_type": "Wireless", "last_reported":
             "Last reported Mar 2012"},
            {"phone_number": "(720) 555-0199", "phone_type": "Landline", "last_reported":
             "Last reported Jun 2026"},
            {"phone_number": "(303) 555-0100", "phone_type": "Wireless", "last_reported":
             "Last reported Jan 2026"},
            {"phone_number": "(303) 555-0122", "phone_type": "Wireless", "last_reported":
             "Last reported Sep 2025"},
            {"phone_number": "(303) 555-0100", "phone_type": "Wireless"},
            {"phone_number": "555", "phone_type": "Wireless"},
        ]})
    ranked = rank_phones(details, dt.date(2026, 11, 28), stale_after_years=5)
    assert [p["number"] for p in ranked] == ["+13035550100", "+13035550122", "+17205550199", "+13035550111"]


def test_parse_last_reported() -> None:
    assert parse_last_reported("Last reported Jan 2026") == "2026-01"
    assert parse_last_reported("Last reported September 2019") == "2019-09"
    assert parse_last_reported("2014") == "2014"
    assert parse_last_reported("recently") is None


async def test_key_echoed_by_the_gateway_is_redacted(rapid: HTTPServer, settings: dict[str, Any]) -> None:
    from werkzeug import Request, Response

    def handler(request: Request) -> Response:
        body = f'{{"message": "key {request.headers["X-RapidAPI-Key"]} is not subscribed"}}'
        return Response(body, status=403, content_type="application/json")

    rapid.expect_request(SEARCH).respond_with_handler(handler)
    run = await run_station(SkipTracingStation, JOHN_DENVER, settings=settings)
    assert run.record.error_category == "auth"
    assert "key *** is not subscribed" in (run.record.error or "")
    no_leak(run.result)


# ----------------------------------------------------------------------------- issue #13 fixes


@pytest.mark.parametrize("lead", [
    {"first_name": "John", "last_name": "Smith"},          # only first and last name
    {"full_name": "John Smith", "state": "CO"},            # only a state
])
async def test_two_people_scoring_the_same_is_ambiguous_and_no_details_are_bought(
        rapid: HTTPServer, settings: dict[str, Any], lead: dict[str, str]) -> None:
    body = {"PeopleDetails": [
        {"Name": "John Smith", "Person ID": "pA", "Age": "45", "Lives in": "Denver, CO"},
        {"Name": "John Smith", "Person ID": "pB", "Age": "62", "Lives in": "Aurora, CO"}]}
    rapid.expect_request(re.compile(r"^/search/by.+$")).respond_with_json(body)
    serve_details(rapid)
    run = await run_station(SkipTracingStation, lead, settings=settings)
    assert run.record.status == "succeeded" and run.fields == {}
    assert "ambiguous" in run.record.misses["phone"] and "tie_margin" in run.record.misses["phone"]
    assert "match_score" not in run.result.data
    assert run.record.cost == pytest.approx(0.01)  # the search only
    assert requests_to(rapid, DETAILS) == []
    assert (run.result.status, run.record.attempts, run.result.total_cost) == ("succeeded", 1, pytest.approx(0.01))


async def test_the_tie_margin_is_a_setting(rapid: HTTPServer, settings: dict[str, Any]) -> None:
    body = {"PeopleDetails": [
        {"Name": "John Smith", "Person ID": FIRST_ID, "Age": "45", "Lives in": "Denver, CO"},
        {"Name": "John Smith", "Person ID": "pB", "Age": "62", "Lives in": "Aurora, CO"}]}
    rapid.expect_request("/search/bynameaddress").respond_with_json(body)
    serve_details(rapid)
    run = await run_station(SkipTracingStation, {"full_name": "John Smith", "city": "Denver", "state": "CO"},
                            settings=settings | {"tie_margin": 0.0})
    assert run.fields["phone"] == "+13035550100" and run.record.cost == pytest.approx(0.02)


async def test_a_search_by_phone_never_writes_a_person_who_lacks_that_phone(rapid: HTTPServer,
                                                                          settings: dict[str, Any]) -> None:
    first = example("search_response")["PeopleDetails"][0]
    serve_search(rapid, "/search/byphone", body={"PeopleDetails": [first]}, phoneno="4155550123")
    serve_details(rapid)  # John Smith's record: his phones are 303/720 numbers, not 415-555-0123
    run = await run_station(SkipTracingStation, {"phone": "+14155550123"}, settings=settings)
    assert run.record.status == "succeeded" and run.fields == {}
    assert "does not carry the lead's phone" in run.record.misses["phone"]
    assert run.record.cost == pytest.approx(0.02)  # both calls were made and billed
    assert "emails" not in run.result.data and "current_address" not in run.result.data
    assert (run.result.status, run.record.attempts) == ("succeeded", 1)


async def test_a_search_by_email_never_writes_a_person_who_lacks_that_email(rapid: HTTPServer,
                                                                          settings: dict[str, Any]) -> None:
    first = example("search_response")["PeopleDetails"][0]
    serve_search(rapid, "/search/byemail", body={"PeopleDetails": [first]}, email="someone.else@example.com")
    serve_details(rapid)
    run = await run_station(SkipTracingStation, {"email": "someone.else@example.com"}, settings=settings)
    assert run.fields == {} and "does not carry the lead's e-mail" in run.record.misses["phone"]
    assert run.record.cost == pytest.approx(0.02)


async def test_rate_429_with_reset_header_waits_the_gateway_reset(rapid: HTTPServer,
                                                                 settings: dict[str, Any]) -> None:
    rapid.expect_oneshot_request(SEARCH).respond_with_json(
        gateway("429_rate"), status=429, headers={"x-ratelimit-requests-reset": "40",
                                                  "x-ratelimit-requests-remaining": "12"})
    serve_search(rapid)
    serve_details(rapid)
    retries = RetryLog()
    run = await run_station(SkipTracingStation, JOHN_DENVER, settings=settings, plugins=[retries])
    # 40 s is longer than retry.max_delay (30 s): the lead is deferred, not retried in vain
    assert (run.result.status, run.record.reason, run.record.attempts) == ("deferred", "deferred", 0)
    assert retries.retries == [] and len(rapid.log) == 1 and run.result.total_cost == 0


async def test_the_key_goes_only_to_the_rapidapi_host(rapid: HTTPServer, settings: dict[str, Any]) -> None:
    serve_search(rapid)
    run = await run_station(SkipTracingStation, JOHN_DENVER,
                            settings={k: v for k, v in settings.items() if k != "allow_hosts"})
    assert run.record.error_category == "auth" and "allow_hosts" in (run.record.error or "")
    assert rapid.log == []


async def test_a_gzip_bomb_answer_is_a_reasoned_failure(rapid: HTTPServer, settings: dict[str, Any]) -> None:
    import gzip
    rapid.expect_request(SEARCH).respond_with_data(gzip.compress(b" " * (30 * 1024 * 1024)),
                                                   headers={"Content-Encoding": "gzip"},
                                                   content_type="application/json")
    run = await run_station(SkipTracingStation, JOHN_DENVER, settings=settings)
    assert (run.record.status, run.record.error_category, run.record.attempts) == ("failed", "permanent", 1)
    assert "cap" in (run.record.error or "") and run.result.total_cost == 0
