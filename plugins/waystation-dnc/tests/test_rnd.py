"""ReassignedNumbersStation against a real HTTP server on 127.0.0.1 serving the modelled RND shape
(one query: a 10-digit number and a date; answer yes / no / no data). The shape was not checked
against the live RND specification: see the module docstring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer
from waystation.dial import evidence as ev
from waystation.testing import run_station
from waystation_dnc import plugin
from waystation_dnc.rnd import ReassignedNumbersStation

TOKEN = "rnd-token-8c2d"


def settings(server: HTTPServer, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"token": TOKEN, "base_url": server.url_for("/v1"), "price": 0.01, "allow_hosts": ["127.0.0.1", "localhost"],
            "cache": str(tmp_path / "rnd.sqlite"), **extra}


def answer(server: HTTPServer, result: str, *, tn: str = "2125550123", date: str = "2025-03-01",
           status: int = 200) -> None:
    body = {"tn": tn, "date": date, "result": result, "requestId": f"rnd-{tn}-{date}"}
    server.expect_request("/v1/query", method="POST", json={"tn": tn, "date": date},
                          headers={"Authorization": f"Bearer {TOKEN}"}).respond_with_data(
        json.dumps(body), status=status, content_type="application/json")


LEAD = {"phone": "+12125550123", "consent_date": "2025-03-01"}


async def run(server: HTTPServer, tmp_path: Path, lead: dict[str, Any] = LEAD, **extra: Any) -> Any:
    return await run_station(ReassignedNumbersStation, lead, settings=settings(server, tmp_path, **extra),
                             plugins=[plugin])


async def test_yes_no_and_no_data_become_evidence(httpserver: HTTPServer, tmp_path: Path) -> None:
    for result, expected in (("Yes", "yes"), ("no", "no"), ("No Data", "no_data")):
        httpserver.clear()
        answer(httpserver, result)
        r = await run(httpserver, tmp_path / expected)
        assert r.record.status == "succeeded", r.record.error
        assert r.result.data["reassigned"] == expected
        (item,) = ev.items(r.result.data["dial_evidence"])
        assert (item.check, item.result, item.phone) == ("reassigned", expected, "2125550123")
        assert item.source == {"vendor": "fcc-rnd", "request_id": "rnd-2125550123-2025-03-01"}
        assert item.detail["consent_date"] == "2025-03-01"
        assert r.result.total_cost == 0.01


async def test_answers_are_cached_per_number_and_date(httpserver: HTTPServer, tmp_path: Path) -> None:
    answer(httpserver, "no")
    answer(httpserver, "yes", date="2024-01-10")
    first = await run(httpserver, tmp_path)
    second = await run(httpserver, tmp_path)
    other_date = await run(httpserver, tmp_path, {**LEAD, "consent_date": "2024-01-10"})
    assert len(httpserver.log) == 2  # (number, 2025-03-01) was asked once
    assert second.result.data["reassigned"] == "no" and second.result.total_cost == 0
    first_at = ev.items(first.result.data["dial_evidence"])[0].checked_at
    assert ev.items(second.result.data["dial_evidence"])[0].checked_at == first_at
    assert other_date.result.data["reassigned"] == "yes"


async def test_no_consent_date_means_no_query(httpserver: HTTPServer, tmp_path: Path) -> None:
    r = await run(httpserver, tmp_path, {"phone": "+12125550123"})
    assert r.record.status == "succeeded" and "reassigned" not in r.result.data
    assert "consent_date" in r.record.misses["reassigned"]
    r = await run(httpserver, tmp_path, {"phone": "+12125550123", "consent_date": "2999-01-01"})
    assert "not in the past" in r.record.misses["reassigned"]
    assert httpserver.log == [] and r.result.total_cost == 0


async def test_errors_fail_the_step_and_never_count_as_no(httpserver: HTTPServer, tmp_path: Path) -> None:
    answer(httpserver, "no", status=401)
    r = await run(httpserver, tmp_path)
    assert r.record.status == "failed" and "FCC_RND_TOKEN" in (r.record.error or "")
    assert "reassigned" not in r.result.data and TOKEN not in (r.record.error or "")
    httpserver.clear()
    answer(httpserver, "maybe")
    r = await run(httpserver, tmp_path / "b")
    assert r.record.status == "failed" and "expected yes, no or no data" in (r.record.error or "")


async def test_the_token_goes_only_to_the_rnd_host(httpserver: HTTPServer, tmp_path: Path) -> None:
    settings_ = settings(httpserver, tmp_path)
    settings_.pop("allow_hosts")
    r = await run_station(ReassignedNumbersStation, LEAD, settings=settings_, plugins=[plugin])
    assert r.record.status == "failed" and "allow_hosts" in (r.record.error or "")
    assert httpserver.log == []
