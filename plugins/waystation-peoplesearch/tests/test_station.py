"""TruePeopleSearchStation through the real engine, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from conftest import HTML, JOHN, JOHN_DETAIL, JOHN_QUERY, page, requests_to
from pytest_httpserver import HTTPServer
from waystation import PluginHost
from waystation.testing import run_route, run_station
from waystation_peoplesearch import station as station_module
from waystation_peoplesearch.station import PROVIDED, TruePeopleSearchStation
from werkzeug import Response

#: The polite default rate limit (0.5 calls/s) paced for tests that make several calls.
FAST = {"rate_limit": {"per_second": 1000}}


async def test_off_by_default_makes_no_request(httpserver: HTTPServer) -> None:
    run = await run_station(TruePeopleSearchStation, JOHN,
                            settings={"base_url": httpserver.url_for("/").rstrip("/")})
    assert run.record.status == "succeeded"
    assert not run.record.hit
    assert run.fields == {}
    assert set(run.record.misses) == set(PROVIDED)
    assert "opts in" in run.record.misses["phone"]
    assert httpserver.log == []


async def test_match_provides_phones_age_address(site: Callable[..., HTTPServer],
                                                 settings: dict[str, Any]) -> None:
    server = site()
    run = await run_station(TruePeopleSearchStation, JOHN, settings=settings, step=FAST)
    assert run.record.status == "succeeded", run.record.error
    assert run.record.hit
    assert run.result.data["phone"] == "+13035550100"
    assert run.fields["phones"] == [
        {"number": "+13035550100", "type": "wireless", "last_reported": "2026-01", "provider": "T-Mobile USA",
         "primary": True},
        {"number": "+13035550142", "type": "voip", "last_reported": "2024-03", "provider": "Bandwidth.com",
         "primary": False},
        {"number": "+17205550199", "type": "landline", "last_reported": "2019-06",
         "provider": "Qwest Corporation", "primary": False},
    ]
    assert run.fields["age"] == 45
    assert run.fields["current_address"] == "123 Main St, Denver, CO 80201"
    assert run.record.cost == 0 and run.result.total_cost == 0
    assert "score 1.00" in (run.record.stop_reason or "")
    # the documented query encoding, and a User-Agent naming waystation and the contact
    results = [req for req, _ in server.log if req.path == "/results"]
    assert len(results) == 1
    assert results[0].query_string.decode() == JOHN_QUERY
    agent = results[0].headers["User-Agent"]
    assert agent.startswith("waystation-peoplesearch/") and "ops@example.com" in agent
    assert [req.path for req, _ in server.log] == ["/robots.txt", "/results", JOHN_DETAIL]


async def test_the_best_card_is_not_the_first(site: Callable[..., HTTPServer],
                                              settings: dict[str, Any]) -> None:
    # The first card is a John Smith of Aurora who used to live in Denver; the lead lives in Denver.
    server = site()
    run = await run_station(TruePeopleSearchStation, JOHN, settings=settings, step=FAST)
    assert run.record.hit
    assert requests_to(server, "/find/person/p0r8l2n4u6m1t9q3x") == 0
    assert requests_to(server, JOHN_DETAIL) == 1


async def test_zipcode_is_the_place_when_city_is_missing(site: Callable[..., HTTPServer],
                                                          settings: dict[str, Any]) -> None:
    site(query="name=John%20Smith&citystatezip=80201")
    lead = {"first_name": "John", "last_name": "Smith", "zipcode": "80201"}
    run = await run_station(TruePeopleSearchStation, lead, settings={**settings, "min_score": 0.5,
                                                                     "ambiguity_margin": 0})
    # no location to compare: both exact-name cards score 1.0, the first in page order wins
    assert run.record.status == "succeeded", run.record.error


async def test_low_score_is_a_reasoned_miss(site: Callable[..., HTTPServer],
                                            settings: dict[str, Any]) -> None:
    server = site(query="name=John%20Smith&citystatezip=Miami%2C%20FL")
    lead = {"first_name": "John", "last_name": "Smith", "city": "Miami", "state": "FL"}
    run = await run_station(TruePeopleSearchStation, lead, settings=settings, step=FAST)
    assert run.record.status == "succeeded" and not run.record.hit
    assert "min_score" in run.record.misses["phone"]
    assert requests_to(server, JOHN_DETAIL) == 0


async def test_ambiguous_cards_are_a_miss(httpserver: HTTPServer, settings: dict[str, Any]) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/results").respond_with_data(page("results_ambiguous"), content_type=HTML)
    lead = {"first_name": "Mary", "last_name": "Jones", "city": "Austin", "state": "TX"}
    run = await run_station(TruePeopleSearchStation, lead, settings=settings, step=FAST)
    assert not run.record.hit
    assert "ambiguous" in run.record.misses["phone"]
    assert [req.path for req, _ in httpserver.log] == ["/robots.txt", "/results"]
    # the lead's age tells them apart
    httpserver.expect_request("/find/person/pmj222").respond_with_data("gone", status=404)
    run = await run_station(TruePeopleSearchStation, {**lead, "age": "70"}, settings=settings, step=FAST)
    assert "404" in run.record.misses["phone"]
    assert requests_to(httpserver, "/find/person/pmj222") == 1
    assert requests_to(httpserver, "/find/person/pmj111") == 0


async def test_no_records_is_a_miss(site: Callable[..., HTTPServer], settings: dict[str, Any]) -> None:
    site(results="results_none", detail=None)
    run = await run_station(TruePeopleSearchStation, JOHN, settings=settings, step=FAST)
    assert run.record.status == "succeeded" and not run.record.hit
    assert "no records" in run.record.misses["phone"]


async def test_detail_404_is_a_miss(site: Callable[..., HTTPServer], settings: dict[str, Any]) -> None:
    server = site(detail=None)
    server.expect_request(JOHN_DETAIL).respond_with_data("Not Found", status=404)
    run = await run_station(TruePeopleSearchStation, JOHN, settings=settings, step=FAST)
    assert run.record.status == "succeeded" and not run.record.hit
    assert "404" in run.record.misses["phone"]
    assert run.record.attempts == 1


@pytest.mark.parametrize("robots", [
    "User-agent: *\nDisallow: /results\n",
    "User-agent: waystation-peoplesearch\nDisallow: /\n\nUser-agent: *\nAllow: /\n",
])
async def test_robots_disallow_results_means_no_search(site: Callable[..., HTTPServer],
                                                       settings: dict[str, Any], robots: str) -> None:
    server = site(robots=robots)
    run = await run_station(TruePeopleSearchStation, JOHN, settings=settings, step=FAST)
    assert run.record.status == "succeeded" and not run.record.hit
    assert "robots.txt" in run.record.misses["phone"] and "/results" in run.record.misses["phone"]
    assert [req.path for req, _ in server.log] == ["/robots.txt"]


async def test_robots_disallow_detail_pages(site: Callable[..., HTTPServer], settings: dict[str, Any]) -> None:
    server = site(robots="User-agent: *\nDisallow: /find/\n")
    run = await run_station(TruePeopleSearchStation, JOHN, settings=settings, step=FAST)
    assert not run.record.hit and "/find/person/" in run.record.misses["phone"]
    assert requests_to(server, JOHN_DETAIL) == 0


async def test_robots_404_allows_and_can_be_switched_off(site: Callable[..., HTTPServer],
                                                        settings: dict[str, Any]) -> None:
    server = site(robots=None)
    run = await run_station(TruePeopleSearchStation, JOHN, settings=settings, step=FAST)
    assert run.record.hit
    server.clear_log()
    run = await run_station(TruePeopleSearchStation, JOHN, settings={**settings, "respect_robots": False})
    assert run.record.hit
    assert requests_to(server, "/robots.txt") == 0


async def test_robots_is_fetched_once_per_run(site: Callable[..., HTTPServer],
                                              settings: dict[str, Any]) -> None:
    server = site()
    route = yaml.safe_dump({"name": "t", "steps": [{"station": TruePeopleSearchStation.name,
                                                    "settings": settings, **FAST}]})
    results = await run_route(route, [JOHN, {**JOHN, "id": "2"}, {**JOHN, "id": "3"}],
                              [TruePeopleSearchStation])
    assert all(r.steps[TruePeopleSearchStation.name].hit for r in results)
    assert requests_to(server, "/robots.txt") == 1
    assert requests_to(server, "/results") == 3


async def test_robots_5xx_disallows_everything_rfc_9309(httpserver: HTTPServer, settings: dict[str, Any]) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("oops", status=503)
    route = yaml.safe_dump({"name": "t", "steps": [{"station": TruePeopleSearchStation.name,
                                                    "settings": settings, **FAST}]})
    results = await run_route(route, [{**JOHN, "id": "1"}, {**JOHN, "id": "2"}], [TruePeopleSearchStation])
    for r in results:
        rec = r.steps[TruePeopleSearchStation.name]
        assert (rec.status, rec.hit, rec.attempts) == ("succeeded", False, 1)
        assert "unreachable (HTTP 503)" in rec.misses["phone"] and "disallowed" in rec.misses["phone"]
    # robots.txt asked once (remembered for robots_retry_after); no page of the site was fetched
    assert [req.path for req, _ in httpserver.log] == ["/robots.txt"]


async def test_robots_5xx_is_asked_again_after_robots_retry_after(site: Callable[..., HTTPServer],
                                                                  httpserver: HTTPServer,
                                                                  settings: dict[str, Any]) -> None:
    httpserver.expect_oneshot_request("/robots.txt").respond_with_data("oops", status=500)
    site()
    route = yaml.safe_dump({"name": "t", "steps": [{"station": TruePeopleSearchStation.name,
                                                    "settings": {**settings, "robots_retry_after": 0}, **FAST}]})
    first, second = await run_route(route, [{**JOHN, "id": "1"}, {**JOHN, "id": "2"}], [TruePeopleSearchStation])
    assert not first.steps[TruePeopleSearchStation.name].hit
    assert second.steps[TruePeopleSearchStation.name].hit
    assert requests_to(httpserver, "/robots.txt") == 2


@pytest.mark.parametrize("status", [401, 403, 404, 410, 429])
async def test_robots_4xx_means_no_rules_and_never_opens_the_breaker(httpserver: HTTPServer,
                                                                     settings: dict[str, Any], status: int) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("Forbidden", status=status)
    httpserver.expect_request("/results", query_string=JOHN_QUERY).respond_with_data(
        page("results_john_smith"), content_type=HTML)
    httpserver.expect_request(JOHN_DETAIL).respond_with_data(page("detail_px0l4n6r2u8t1m0q9"), content_type=HTML)
    route = yaml.safe_dump({"name": "t", "steps": [{"station": TruePeopleSearchStation.name,
                                                    "settings": settings, **FAST}]})
    results = await run_route(route, [{**JOHN, "id": "1"}, {**JOHN, "id": "2"}], [TruePeopleSearchStation])
    assert all(r.steps[TruePeopleSearchStation.name].hit for r in results)
    assert requests_to(httpserver, "/results") == 2 and requests_to(httpserver, "/robots.txt") == 1


@pytest.mark.parametrize(("status", "body"), [(200, "captcha"), (403, "access_denied"),
                                              (503, "access_denied"), (403, None)])
async def test_block_pages_are_blocked_not_retried(httpserver: HTTPServer, settings: dict[str, Any],
                                                   status: int, body: str | None) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/results").respond_with_data(page(body) if body else "", status=status,
                                                            content_type=HTML)
    run = await run_station(TruePeopleSearchStation, JOHN, settings=settings, step=FAST)
    assert run.record.status == "failed"
    assert run.record.error_category == "blocked"
    assert run.record.attempts == 1
    assert requests_to(httpserver, "/results") == 1
    assert "not retried" in (run.record.error or "")


async def test_redirect_to_captcha_is_blocked(httpserver: HTTPServer, settings: dict[str, Any]) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/results").respond_with_response(
        Response(status=302, headers={"Location": "/InternalCaptcha?returnUrl=%2fresults"}))
    httpserver.expect_request("/InternalCaptcha").respond_with_data("<html><body>Verify</body></html>",
                                                                    content_type=HTML)
    run = await run_station(TruePeopleSearchStation, JOHN, settings=settings, step=FAST)
    assert run.record.error_category == "blocked"
    assert "captcha" in (run.record.error or "")


async def test_a_block_opens_the_breaker(httpserver: HTTPServer, settings: dict[str, Any]) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/results").respond_with_data(page("captcha"), content_type=HTML)
    route = yaml.safe_dump({"name": "t", "steps": [{
        "station": TruePeopleSearchStation.name, "settings": settings, "breaker": {"failure_threshold": 1}, **FAST,
    }]})
    leads = [{**JOHN, "id": str(i)} for i in range(4)]
    results = await run_route(route, leads, [TruePeopleSearchStation])
    recs = [r.steps[TruePeopleSearchStation.name] for r in results]
    assert recs[0].status == "failed" and recs[0].error_category == "blocked"
    assert [(r.status, r.reason) for r in recs[1:]] == [("skipped", "breaker_open")] * 3
    assert requests_to(httpserver, "/results") == 1


async def test_a_block_page_opens_the_breaker_at_once(httpserver: HTTPServer, settings: dict[str, Any]) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/results").respond_with_data(page("access_denied"), status=403,
                                                            content_type=HTML)
    route = yaml.safe_dump({"name": "t", "steps": [{"station": TruePeopleSearchStation.name,
                                                    "settings": settings, **FAST}]})
    results = await run_route(route, [{**JOHN, "id": str(i)} for i in range(6)], [TruePeopleSearchStation])
    recs = [r.steps[TruePeopleSearchStation.name] for r in results]
    # one block page, then no request at all: a BlockedError opens the core's breaker at once
    # (whatever failure_threshold says), so every later lead is skipped without a request
    assert requests_to(httpserver, "/results") == 1
    assert recs[0].status == "failed" and recs[0].error_category == "blocked"
    assert [r.reason for r in recs[1:]] == ["breaker_open"] * 5


async def test_requests_resume_after_the_block_cooldown(httpserver: HTTPServer, settings: dict[str, Any]) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_oneshot_request("/results").respond_with_data(page("captcha"), content_type=HTML)
    httpserver.expect_request("/results").respond_with_data(page("results_john_smith"), content_type=HTML)
    httpserver.expect_request(JOHN_DETAIL).respond_with_data(page("detail_px0l4n6r2u8t1m0q9"), content_type=HTML)
    route = yaml.safe_dump({"name": "t", "steps": [{"station": TruePeopleSearchStation.name,
                                                    "settings": {**settings, "block_cooldown": 0}, **FAST,
                                                    "breaker": {"reset_after": 0}}]})
    results = await run_route(route, [{**JOHN, "id": "1"}, {**JOHN, "id": "2"}], [TruePeopleSearchStation])
    recs = [r.steps[TruePeopleSearchStation.name] for r in results]
    assert recs[0].error_category == "blocked" and recs[1].hit


async def test_server_error_is_retried_then_succeeds(site: Callable[..., HTTPServer],
                                                     settings: dict[str, Any]) -> None:
    server = site(detail=None)
    server.expect_oneshot_request(JOHN_DETAIL).respond_with_data("upstream", status=502)
    server.expect_request(JOHN_DETAIL).respond_with_data(page("detail_px0l4n6r2u8t1m0q9"), content_type=HTML)
    run = await run_station(TruePeopleSearchStation, JOHN, settings=settings, step=FAST)
    assert run.record.status == "succeeded" and run.record.hit
    assert run.record.attempts == 2
    assert requests_to(server, JOHN_DETAIL) == 2


async def test_server_error_gives_up_after_three_attempts(site: Callable[..., HTTPServer],
                                                          settings: dict[str, Any]) -> None:
    server = site(detail=None)
    server.expect_request(JOHN_DETAIL).respond_with_data("down", status=503)
    run = await run_station(TruePeopleSearchStation, JOHN, settings=settings, step=FAST)
    assert run.record.status == "failed" and run.record.error_category == "server_error"
    assert run.record.attempts == 3


async def test_429_is_throttled_and_retried(site: Callable[..., HTTPServer], settings: dict[str, Any]) -> None:
    server = site(results="results_john_smith")
    server.clear_all_handlers()
    server.expect_request("/robots.txt").respond_with_data("", status=404)
    server.expect_oneshot_request("/results").respond_with_data("slow down", status=429,
                                                                headers={"Retry-After": "3"})
    server.expect_request("/results").respond_with_data(page("results_john_smith"), content_type=HTML)
    server.expect_request(JOHN_DETAIL).respond_with_data(page("detail_px0l4n6r2u8t1m0q9"), content_type=HTML)
    run = await run_station(TruePeopleSearchStation, JOHN, settings=settings, step=FAST)
    assert run.record.hit and run.record.attempts == 2


async def test_unrecognised_page_is_a_permanent_failure(site: Callable[..., HTTPServer],
                                                        settings: dict[str, Any]) -> None:
    site(results="unrecognised", detail=None)
    run = await run_station(TruePeopleSearchStation, JOHN, settings=settings, step=FAST)
    assert run.record.status == "failed" and run.record.error_category == "permanent"
    assert run.record.attempts == 1
    assert "layout" in (run.record.error or "")


async def test_detail_without_person_details_is_a_permanent_failure(
        site: Callable[..., HTTPServer], settings: dict[str, Any]) -> None:
    site(detail="unrecognised")
    run = await run_station(TruePeopleSearchStation, JOHN, settings=settings, step=FAST)
    assert run.record.status == "failed" and run.record.error_category == "permanent"


async def test_requests_are_paced(site: Callable[..., HTTPServer], settings: dict[str, Any],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(station_module, "_sleep", fake_sleep)
    site(robots="User-agent: *\nCrawl-delay: 7\nAllow: /\n")
    run = await run_station(TruePeopleSearchStation, JOHN, settings={**settings, "request_interval": 3})
    assert run.record.hit
    # robots.txt, then results and detail pages: two waits, the larger of the interval and the crawl delay
    assert len(waits) == 2
    assert all(6 < w <= 7 for w in waits), waits


async def test_settings_from_environment(site: Callable[..., HTTPServer], httpserver: HTTPServer,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    site()
    monkeypatch.setenv("WAYSTATION_PEOPLESEARCH_ENABLED_BY_USER", "true")
    monkeypatch.setenv("WAYSTATION_PEOPLESEARCH_BASE_URL", httpserver.url_for("/"))
    monkeypatch.setenv("WAYSTATION_PEOPLESEARCH_REQUEST_INTERVAL", "0")
    run = await run_station(TruePeopleSearchStation, JOHN)
    assert run.record.hit


async def test_bad_base_url_is_refused_at_compile_time() -> None:
    from waystation import Engine, RouteError

    text = yaml.safe_dump({"name": "t", "steps": [{"station": TruePeopleSearchStation.name,
                                                   "settings": {"base_url": "ftp://x"}}]})
    with pytest.raises(RouteError, match="base_url"):
        Engine.from_text(text, [TruePeopleSearchStation])


def test_plugin_registers_the_station_without_heavy_imports() -> None:
    host = PluginHost.discover()
    assert host.get("TruePeopleSearchStation") is TruePeopleSearchStation
    code = ("import sys, waystation_peoplesearch.plugin as p; p.register_stations(); "
            "print(sorted(m for m in ('httpx', 'selectolax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_station_contract() -> None:
    from waystation.testing import check_station_contract as check

    check(TruePeopleSearchStation)  # off by default: a reasoned miss and no request


def test_station_contract_when_opted_in() -> None:
    from waystation.testing import check_station_contract as check
    from waystation.testing.fake_vendor import Reply

    report = check(
        TruePeopleSearchStation, dict(JOHN),
        settings={"base_url": "{vendor_url}", "enabled_by_user": True, "request_interval": 0},
        fake_responses={
            "/robots.txt": Reply.text("User-agent: *\nAllow: /\n"),
            "/results": Reply.text(page("results_john_smith"), content_type=HTML),
            JOHN_DETAIL: Reply.text(page("detail_px0l4n6r2u8t1m0q9"), content_type=HTML),
        },
    )
    assert report.outcome is not None and report.outcome.fields["phone"] == "+13035550100"
    assert report.requests >= 3


async def test_robots_rules_apply_below_a_prefixed_base_url(httpserver: HTTPServer,
                                                           settings: dict[str, Any]) -> None:
    # a mirror / proxy of the site under a path prefix: robots.txt and its rules are relative to it
    httpserver.expect_request("/mirror/robots.txt").respond_with_data("User-agent: *\nDisallow: /results\n")
    base = httpserver.url_for("/mirror")
    run = await run_station(TruePeopleSearchStation, JOHN, settings={**settings, "base_url": base})
    assert not run.record.hit and "robots.txt" in run.record.misses["phone"]
    assert [req.path for req, _ in httpserver.log] == ["/mirror/robots.txt"]


# ----------------------------------------------------------------------------- issue #13 fixes

AURORA = {"first_name": "John", "last_name": "Smith", "city": "Aurora", "state": "CO", "age": "45"}
AURORA_QUERY = "name=John%20Smith&citystatezip=Aurora%2C%20CO"


async def test_unlabelled_ages_and_comma_lists_of_past_places_pick_the_right_person(
        httpserver: HTTPServer, settings: dict[str, Any]) -> None:
    """Both John Smiths used to live in Aurora; only the right one is 45. Read with the ages and the
    "Aurora CO, Boulder CO" past places, the right card wins instead of an "ambiguous" miss."""
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/results", query_string=AURORA_QUERY).respond_with_data(
        page("results_variants"), content_type=HTML)
    httpserver.expect_request("/find/person/pright45").respond_with_data(page("detail_plain_address"),
                                                                         content_type=HTML)
    run = await run_station(TruePeopleSearchStation, AURORA, settings=settings, step=FAST)
    assert run.record.status == "succeeded" and run.record.hit, run.record.misses
    assert [req.path for req, _ in httpserver.log][-1] == "/find/person/pright45"
    # the plain-text address is read whole, not as "Denver, CO"
    assert run.fields["current_address"] == "123 Main St, Denver, CO 80201"
    assert run.fields["phone"] == "+13035550100" and run.fields["age"] == 45
    assert run.record.cost == 0


async def test_a_redirect_to_another_host_is_not_followed(httpserver: HTTPServer, settings: dict[str, Any]) -> None:
    other = HTTPServer(host="127.0.0.1", port=0)
    other.start()
    try:
        other.expect_request("/results").respond_with_data(page("results_john_smith"), content_type=HTML)
        httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
        httpserver.expect_request("/results").respond_with_response(
            Response(status=302, headers={"Location": other.url_for("/results")}))
        run = await run_station(TruePeopleSearchStation, JOHN, settings=settings, step=FAST)
        assert (run.record.status, run.record.error_category, run.record.attempts) == ("failed", "permanent", 1)
        assert "redirected to another host" in (run.record.error or "")
        assert len(other.log) == 0
    finally:
        other.clear()
        other.stop()


async def test_a_12000_phone_page_is_read_with_bounded_work(site: Callable[..., HTTPServer],
                                                            httpserver: HTTPServer, settings: dict[str, Any]) -> None:
    from hostile_pages import many_phones_detail

    site(detail=None)
    httpserver.expect_request(JOHN_DETAIL).respond_with_data(many_phones_detail(12_000), content_type=HTML)
    run = await run_station(TruePeopleSearchStation, JOHN, settings=settings, step=FAST)
    assert run.record.status == "succeeded", run.record.error
    assert len(run.fields["phones"]) == 50  # max_phones: a bounded field on the lead
    run = await run_station(TruePeopleSearchStation, JOHN, settings={**settings, "max_phones": 5}, step=FAST)
    assert len(run.fields["phones"]) == 5


async def test_a_huge_page_is_a_reasoned_failure(site: Callable[..., HTTPServer], httpserver: HTTPServer,
                                                 settings: dict[str, Any]) -> None:
    site(detail=None)
    httpserver.expect_request(JOHN_DETAIL).respond_with_data("<html>" + "x" * (2 * 1024 * 1024), content_type=HTML)
    run = await run_station(TruePeopleSearchStation, JOHN, settings={**settings, "max_response_bytes": 1024 * 1024},
                            step=FAST)
    assert (run.record.status, run.record.error_category, run.record.attempts) == ("failed", "permanent", 1)
    assert "1,048,576-byte cap" in (run.record.error or "")
