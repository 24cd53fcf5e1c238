"""``source: acs``: the Census Data API, served by a real HTTP server on 127.0.0.1.

The answers are the shapes in ``shared/vendors/census-acs5-examples.json`` (ACS 2018-2022 values).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import parse_qs

import pytest
import waystation.testing
from pytest_httpserver import HTTPServer
from waystation import Engine
from waystation.testing import run_station
from waystation_census.stations import DemographicsStation, IncomeStation
from werkzeug import Request, Response

KEY = "s3cr3t-census-key"
PATH = "/data/2022/acs/acs5"
GEO = "zip code tabulation area"

#: response_multi of the vendor examples file: ZCTA → (B19013_001E, B01003_001E)
ROWS = {"10001": ("106509", "27004"), "60614": ("135364", "71701"), "94105": ("250001", "13722"),
        "98004": ("157784", "39161"), "90210": ("172285", "19180"), "02139": ("117124", "39856"),
        "77429": ("123172", "90790"), "99998": ("-666666666", "120")}


def census_rows(query_string: str) -> list[list[str]]:
    """The API's answer to a query: a header row, then one row per requested ZCTA it knows."""
    args = parse_qs(query_string)
    variables = args["get"][0].split(",")
    wanted = args["for"][0].split(":", 1)[1].split(",")
    body: list[list[str]] = [[*variables, GEO]]
    for z in wanted:
        if z in ROWS:
            income, pop = ROWS[z]
            cells = {"NAME": f"ZCTA5 {z}", "B19013_001E": income, "B01003_001E": pop}
            body.append([cells.get(v, "0") for v in variables] + [z])
    return body


def census_handler(request: Request) -> Response:
    """Answer like the API: the rows, 204 when it knows none, its key error page for a wrong key."""
    if parse_qs(request.query_string.decode()).get("key") != [KEY]:
        return Response("<html>Invalid Key</html>", 200, {"X-DataWebAPI-KeyError": "Invalid Key",
                                                           "Content-Type": "text/html"})
    body = census_rows(request.query_string.decode())
    if len(body) == 1:
        return Response(status=204)
    return Response(json.dumps(body), 200, {"Content-Type": "application/json;charset=utf-8"})


@pytest.fixture
def api(httpserver: HTTPServer) -> HTTPServer:
    return httpserver


def settings_for(server: HTTPServer, **extra: Any) -> dict[str, Any]:
    return {"source": "acs", "base_url": server.url_for("/data"), "census_api_key": KEY,
            "allow_hosts": ["127.0.0.1", "localhost"], **extra}


def queries(server: HTTPServer) -> list[dict[str, list[str]]]:
    return [parse_qs(req.query_string.decode()) for req, _ in server.log]


async def test_one_zip(api: HTTPServer) -> None:
    api.expect_request(PATH).respond_with_handler(census_handler)
    run = await run_station(IncomeStation, {"zipcode": "10001"}, settings=settings_for(api, batch_window=0))
    assert run.record.status == "succeeded", run.record.error
    assert run.fields == {"median_household_income": 106509, "income_topcoded": False,
                          "income_bottomcoded": False, "income_source": "ACS 2022 5-year (Census Data API)"}
    (q,) = queries(api)
    assert q["get"] == ["NAME,B19013_001E"]
    assert q["for"] == [f"{GEO}:10001"]
    assert q["key"] == [KEY]


async def test_key_from_the_environment(api: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CENSUS_API_KEY", KEY)
    api.expect_request(PATH).respond_with_handler(census_handler)
    run = await run_station(IncomeStation, {"zipcode": "02139"},
                            settings={"source": "acs", "base_url": api.url_for("/data"),
                                      "allow_hosts": ["localhost", "127.0.0.1"]})
    assert run.fields["median_household_income"] == 117124


async def test_leads_in_flight_share_one_request_and_the_cache(api: HTTPServer) -> None:
    api.expect_request(PATH).respond_with_handler(census_handler)
    route = {"name": "acs", "input": ["zipcode"],
             "steps": [{"station": "IncomeStation", "settings": settings_for(api, batch_window=0.2)}]}
    engine = Engine.from_text(json.dumps(route), [IncomeStation])
    zips = ["10001", "60614", "94105", "98004", "90210", "02139", "77429", "10001", "99998", "12345"]
    async with engine:
        results = await asyncio.gather(*(engine.run({"zipcode": z}) for z in zips))
        assert len(api.log) == 1
        (q,) = queries(api)
        assert sorted(q["for"][0].split(":", 1)[1].split(",")) == sorted(set(zips))
        incomes = [r.data.get("median_household_income") for r in results]
        assert incomes == [106509, 135364, 250000, 157784, 172285, 117124, 123172, 106509, None, None]
        assert results[2].data["income_topcoded"] is True
        # the sentinel -666666666 is a missing value, an unknown ZCTA is not in the answer
        assert "no median household income estimate" in results[8].steps["IncomeStation"].misses[
            "median_household_income"]
        assert "not in the ACS 2022 5-year (Census Data API) data" in results[9].steps["IncomeStation"].misses[
            "median_household_income"]
        # a second pass is answered from the cache: no new request
        again = await asyncio.gather(*(engine.run({"zipcode": z}) for z in zips[:3]))
        assert [r.data["median_household_income"] for r in again] == incomes[:3]
        assert len(api.log) == 1


async def test_batch_size_splits_requests(api: HTTPServer) -> None:
    api.expect_request(PATH).respond_with_handler(census_handler)
    route = {"name": "acs", "input": ["zipcode"],
             "steps": [{"station": "IncomeStation", "settings": settings_for(api, batch_window=0.2, batch_size=3)}]}
    engine = Engine.from_text(json.dumps(route), [IncomeStation])
    zips = ["10001", "60614", "94105", "98004", "90210", "02139", "77429"]
    async with engine:
        results = await asyncio.gather(*(engine.run({"zipcode": z}) for z in zips))
    assert all(r.data.get("median_household_income") for r in results)
    sizes = sorted(len(q["for"][0].split(":", 1)[1].split(",")) for q in queries(api))
    assert sizes == [1, 3, 3]


async def test_no_data_204_is_a_miss(api: HTTPServer) -> None:
    api.expect_request(PATH).respond_with_data("", status=204)
    run = await run_station(IncomeStation, {"zipcode": "12345"}, settings=settings_for(api, batch_window=0))
    assert run.record.status == "succeeded" and run.fields == {}
    assert "12345 is not in the" in run.record.misses["median_household_income"]


async def test_no_key_redirect_is_an_auth_error(api: HTTPServer) -> None:
    api.expect_request(PATH).respond_with_data(
        "", status=302, headers={"Location": "https://api.census.gov/data/missing_key.html"})
    run = await run_station(IncomeStation, {"zipcode": "10001"}, settings=settings_for(api, batch_window=0))
    assert run.record.status == "failed"
    assert run.record.error_category == "auth"
    assert run.record.attempts == 1
    assert "missing key" in (run.record.error or "")
    assert KEY not in (run.record.error or "")


async def test_invalid_key_page_is_an_auth_error(api: HTTPServer) -> None:
    api.expect_request(PATH).respond_with_handler(census_handler)
    run = await run_station(IncomeStation, {"zipcode": "10001"},
                            settings=settings_for(api, batch_window=0, census_api_key="wrong-key"))
    assert run.record.status == "failed" and run.record.error_category == "auth"
    assert "X-DataWebAPI-KeyError" in (run.record.error or "")
    assert "wrong-key" not in (run.record.error or "")


async def test_unknown_variable_400_is_permanent(api: HTTPServer) -> None:
    api.expect_request(PATH).respond_with_data("error: unknown variable 'B19013_999E'", status=400,
                                               content_type="text/plain")
    run = await run_station(IncomeStation, {"zipcode": "10001"}, settings=settings_for(api, batch_window=0))
    assert run.record.status == "failed" and run.record.error_category == "permanent"
    assert run.record.attempts == 1
    assert "unknown variable 'B19013_999E'" in (run.record.error or "")


async def test_server_error_is_retried(api: HTTPServer) -> None:
    api.expect_ordered_request(PATH).respond_with_data("There was an error while running your query",
                                                       status=500)
    api.expect_ordered_request(PATH).respond_with_handler(census_handler)
    run = await run_station(IncomeStation, {"zipcode": "60614"}, settings=settings_for(api, batch_window=0))
    assert run.record.status == "succeeded", run.record.error
    assert run.record.attempts == 2
    assert run.fields["median_household_income"] == 135364


async def test_garbage_and_html_answers_are_retried_then_fail(api: HTTPServer) -> None:
    api.expect_request(PATH).respond_with_data("[[\"NAME\", ", status=200, content_type="application/json")
    run = await run_station(IncomeStation, {"zipcode": "60614"}, settings=settings_for(api, batch_window=0))
    assert run.record.status == "failed" and run.record.error_category == "server_error"
    assert run.record.attempts == 3
    assert "not JSON" in (run.record.error or "")
    api.clear()
    api.expect_request(PATH).respond_with_data("<html>maintenance</html>", content_type="text/html")
    run = await run_station(IncomeStation, {"zipcode": "60614"}, settings=settings_for(api, batch_window=0))
    assert run.record.status == "failed" and "HTML" in (run.record.error or "")


async def test_throttled_is_retried_after_the_wait_it_asks(api: HTTPServer) -> None:
    api.expect_ordered_request(PATH).respond_with_data("slow down", status=429, headers={"Retry-After": "0"})
    api.expect_ordered_request(PATH).respond_with_handler(census_handler)
    run = await run_station(IncomeStation, {"zipcode": "90210"}, settings=settings_for(api, batch_window=0))
    assert run.record.status == "succeeded" and run.record.attempts == 2
    assert run.fields["median_household_income"] == 172285


async def test_cancelled_leads_cancel_the_request_nobody_waits_for(api: HTTPServer) -> None:
    import threading

    release = threading.Event()

    def slow(request: Request) -> Response:
        release.wait(5)
        return census_handler(request)

    api.expect_request(PATH).respond_with_handler(slow)
    station = IncomeStation(IncomeStation.Settings(**settings_for(api, batch_window=0.01)))
    await station.open()
    try:
        source = station.source
        assert source is not None
        tasks = [asyncio.ensure_future(source.lookup(z)) for z in ("10001", "60614")]
        while not api.log and len(getattr(source, "_tasks", ())) == 0:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        assert len(source._tasks) == 1  # type: ignore[attr-defined]
        tasks[0].cancel()
        await asyncio.sleep(0.01)
        assert len(source._tasks) == 1  # the other lead still waits for it
        tasks[1].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0.05)
        assert len(source._tasks) == 0  # nobody waits: the request was cancelled
    finally:
        release.set()
        await station.close()


async def test_batch_failure_reaches_every_lead(api: HTTPServer) -> None:
    api.expect_request(PATH).respond_with_data("error: unknown variable", status=400)
    route = {"name": "acs", "input": ["zipcode"],
             "steps": [{"station": "IncomeStation", "settings": settings_for(api, batch_window=0.1)}]}
    engine = Engine.from_text(json.dumps(route), [IncomeStation])
    async with engine:
        results = await asyncio.gather(*(engine.run({"zipcode": z}) for z in ["10001", "60614"]))
    assert [r.steps["IncomeStation"].error_category for r in results] == ["permanent", "permanent"]
    assert len(api.log) == 1


async def test_demographics_from_the_api(api: HTTPServer) -> None:
    def handler(request: Request) -> Response:
        args = parse_qs(request.query_string.decode())
        variables = args["get"][0].split(",")
        values = {"NAME": "ZCTA5 10001", "B01003_001E": "27004", "B11001_001E": "14375", "B01002_001E": "35.7",
                  "B25010_001E": "1.72", "B25077_001E": "2000001", "B17001_001E": "25000",
                  "B17001_002E": "4000", "B15003_001E": "20000", "B15003_022E": "7000", "B15003_023E": "4000",
                  "B15003_024E": "1000", "B15003_025E": "1000", "B25003_001E": "14375",
                  "B25003_002E": "-888888888", "B01001_001E": "27004"}
        row = [values.get(v, "100") for v in variables] + ["10001"]
        return Response(json.dumps([[*variables, GEO], row]), 200, {"Content-Type": "application/json"})

    api.expect_request(PATH).respond_with_handler(handler)
    run = await run_station(DemographicsStation, {"zipcode": "10001"}, settings=settings_for(api, batch_window=0))
    f = run.fields
    assert (f["population"], f["households"], f["median_age"], f["avg_household_size"]) == (27004, 14375, 35.7, 1.72)
    assert f["median_home_value"] == 2000000  # top-coded 2,000,001
    assert f["pct_below_poverty"] == 0.16
    assert f["pct_bachelors_or_higher"] == 0.65
    assert f["pct_65_plus"] == round(1200 / 27004, 4)  # twelve age cells of 100
    assert "pct_owner_occupied" not in f  # a sentinel in the numerator
    assert run.record.misses["county"] == "county comes only with the offline data"
    assert len(parse_qs(api.log[0][0].query_string.decode())["get"][0].split(",")) <= 50


async def test_key_is_masked_in_httpx_logs(api: HTTPServer, caplog: pytest.LogCaptureFixture) -> None:
    api.expect_request(PATH).respond_with_handler(census_handler)
    with caplog.at_level(logging.DEBUG):
        run = await run_station(IncomeStation, {"zipcode": "10001"}, settings=settings_for(api, batch_window=0))
    assert run.record.status == "succeeded"
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("werkzeug")]  # not the server's
    assert any("key=***" in m for m in ours)
    assert not [m for m in ours if KEY in m]


async def test_unreachable_api_is_a_connection_error() -> None:
    settings = {"source": "acs", "base_url": "http://127.0.0.1:9", "census_api_key": KEY, "batch_window": 0,
                "allow_hosts": ["127.0.0.1", "localhost"]}
    run = await run_station(IncomeStation, {"zipcode": "10001"}, settings=settings)
    assert run.record.status == "failed" and run.record.attempts == 3
    assert "the Census API: connection failed" in (run.record.error or "")
    assert KEY not in (run.record.error or "")


@pytest.mark.parametrize(("cls", "window"), [(IncomeStation, 0), (DemographicsStation, 0), (IncomeStation, 0.01)])
def test_contract_in_api_mode(cls: type, window: float) -> None:
    check = waystation.testing.check_station_contract
    from waystation.testing import FakeVendor

    vendor = FakeVendor()
    vendor.start()
    try:
        vendor.handle(PATH, lambda req: census_rows(req.query_string))
        report = check(cls, {"zipcode": "10001"}, vendor=vendor, allow_secret_in=("query",),
                       settings={"source": "acs", "base_url": "{vendor_url}/data", "census_api_key": KEY,
                                 "allow_hosts": ["127.0.0.1", "localhost"],
                                 "batch_window": window})
    finally:
        vendor.stop()
    assert not report.violations



async def test_the_key_goes_only_to_api_census_gov(api: HTTPServer) -> None:
    api.expect_request(PATH).respond_with_handler(census_handler)
    settings = {k: v for k, v in settings_for(api, batch_window=0).items() if k != "allow_hosts"}
    run = await run_station(IncomeStation, {"zipcode": "02139"}, settings=settings)
    assert (run.record.status, run.record.error_category) == ("failed", "auth")
    assert "allow_hosts" in (run.record.error or "") and KEY not in (run.record.error or "")
    assert api.log == []


async def test_a_huge_answer_is_a_reasoned_failure(api: HTTPServer) -> None:
    import gzip
    api.expect_request(PATH).respond_with_data(gzip.compress(b"[" * (20 * 1024 * 1024)),
                                               headers={"Content-Encoding": "gzip"}, content_type="application/json")
    run = await run_station(IncomeStation, {"zipcode": "02139"},
                            settings=settings_for(api, batch_window=0, max_response_bytes=1024 * 1024))
    assert (run.record.status, run.record.error_category, run.record.attempts) == ("failed", "permanent", 1)
    assert "cap" in (run.record.error or "")
