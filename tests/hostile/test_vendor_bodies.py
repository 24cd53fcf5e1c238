"""Hostile vendor bodies: a gzip bomb, a 12,000-phone page, a redirect to another host, a huge body.

Each goes through a shipped station and the real engine against a real HTTP server on 127.0.0.1,
and must end as a reasoned step failure (or a bounded result) — never a memory blow-up, a blocked
event loop or a request to another host. Bounds are asserted on bytes and work units, not time.
"""

from __future__ import annotations

import gzip
import importlib.metadata as md
import threading
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from pytest_httpserver import HTTPServer
from waystation.testing.services import service_missing
from werkzeug import Request, Response

PLUGINS = ("waystation-telnyx", "waystation-rapidapi", "waystation-peoplesearch")
MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def _plugins() -> None:
    missing = []
    for dist in PLUGINS:
        try:
            md.distribution(dist)
        except md.PackageNotFoundError:
            missing.append(dist)
    if missing:
        service_missing(f"plugins not installed: {', '.join(missing)} (the tox 'integration' env installs them)")


@pytest.fixture
def vendor() -> Iterator[HTTPServer]:
    srv = HTTPServer(host="127.0.0.1", port=0)
    srv.start()
    yield srv
    srv.clear()
    srv.stop()


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


async def test_a_gzip_bomb_stops_at_the_cap(vendor: HTTPServer) -> None:
    from waystation.testing import run_station
    from waystation_rapidapi import SkipTracingStation

    bomb = gzip.compress(b"\0" * (256 * MiB))  # 256 MiB decoded from ~250 KiB on the wire
    assert len(bomb) < MiB
    vendor.expect_request("/search/bynameaddress").respond_with_data(
        bomb, headers={"Content-Encoding": "gzip"}, content_type="application/json")
    before = rss()
    run = await run_station(SkipTracingStation, {"full_name": "John Smith", "city": "Denver", "state": "CO"},
                            settings={"api_key": "k-secret-1", "base_url": vendor.url_for("/").rstrip("/"),
                                      "allow_hosts": ["127.0.0.1"]})
    rec = run.record
    assert (rec.status, rec.error_category, rec.attempts, rec.cost) == ("failed", "permanent", 1, 0)
    assert rec.error is not None and "5,242,880-byte cap" in rec.error and "decoded" in rec.error
    assert rss() - before < 64 * MiB  # at most the 5 MiB cap (plus noise), never the 256 MiB


async def test_a_huge_body_is_not_read_past_the_cap(vendor: HTTPServer) -> None:
    from waystation.testing import run_station
    from waystation_telnyx import TelnyxGatekeepStation

    sent: list[int] = []

    def endless(_: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            for _ in range(8000):  # 500 MiB if read whole
                sent.append(65536)
                yield b" " * 65536
        return Response(chunks(), content_type="application/json")

    vendor.expect_request("/v2/number_lookup/+13125550142").respond_with_handler(endless)
    before = rss()
    run = await run_station(TelnyxGatekeepStation, {"phone": "+13125550142"},
                            settings={"api_key": "k-secret-2", "base_url": vendor.url_for("/v2"),
                                      "allow_hosts": ["127.0.0.1"], "max_response_bytes": 2 * MiB})
    rec = run.record
    assert (rec.status, rec.error_category, rec.attempts) == ("failed", "permanent", 1)
    assert rec.error is not None and "2,097,152-byte cap" in rec.error and "on the wire" in rec.error
    assert sum(sent) < 64 * MiB  # the server was not drained
    assert rss() - before < 64 * MiB


async def test_a_redirect_to_another_host_is_refused_and_the_other_host_gets_nothing(vendor: HTTPServer) -> None:
    from waystation.testing import run_station
    from waystation_peoplesearch import TruePeopleSearchStation

    other = HTTPServer(host="127.0.0.1", port=0)
    other.start()
    try:
        other.expect_request("/results").respond_with_data("<html>stolen</html>", content_type="text/html")
        vendor.expect_request("/robots.txt").respond_with_data("", status=404)
        vendor.expect_request("/results").respond_with_response(
            Response(status=301, headers={"Location": other.url_for("/results").replace("127.0.0.1", "localhost")}))
        run = await run_station(TruePeopleSearchStation, {"first_name": "John", "last_name": "Smith"},
                                settings={"base_url": vendor.url_for("/").rstrip("/"), "enabled_by_user": True,
                                          "request_interval": 0}, step={"rate_limit": {"per_second": 1000}})
        rec = run.record
        assert (rec.status, rec.error_category, rec.attempts) == ("failed", "permanent", 1)
        assert rec.error == "TruePeopleSearch redirected to another host (http://localhost:" + \
            str(other.port) + "): not followed"
        assert len(other.log) == 0
    finally:
        other.clear()
        other.stop()


async def test_a_12000_phone_page_is_parsed_off_the_loop_with_bounded_work(vendor: HTTPServer,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from waystation.testing import run_station
    from waystation_peoplesearch import TruePeopleSearchStation, parse

    phones = "".join(
        f"<a data-link-to-more='phone' href='/find/phone/x'><span>(303) {200 + i // 10000:03d}-{i % 10000:04d}"
        "</span></a> - <span class='smaller'>Wireless</span><br>" for i in range(12_000))
    detail = ("<html><head><title>John A Smith</title></head><body><div id='personDetails' data-fn='John' "
              "data-ln='Smith' data-age='45' data-city='Denver' data-state='CO'><div class='row'>"
              f"{phones}</div></div></body></html>")
    assert len(detail) > 700 * 1024
    card = ("<div class='card-summary' data-detail-link='/find/person/p1'><span class='content-header'>John A Smith"
            "</span><div><span>Age </span><span class='content-value'>45</span></div><div><span>Lives in </span>"
            "<span class='content-value'>Denver, CO</span></div></div>")
    vendor.expect_request("/robots.txt").respond_with_data("", status=404)
    vendor.expect_request("/results").respond_with_data(f"<html><body>{card}</body></html>", content_type="text/html")
    vendor.expect_request("/find/person/p1").respond_with_data(detail, content_type="text/html")

    texts = 0
    real_text = parse._text

    def counting_text(node: Any) -> str:
        nonlocal texts
        texts += 1
        return real_text(node)

    monkeypatch.setattr(parse, "_text", counting_text)
    threads: list[str] = []
    real_detail = parse.parse_detail

    def recording_detail(html: str, max_phones: int = parse.MAX_PHONES) -> Any:
        threads.append(threading.current_thread().name)
        return real_detail(html, max_phones)

    monkeypatch.setattr(parse, "parse_detail", recording_detail)
    run = await run_station(TruePeopleSearchStation, {"first_name": "John", "last_name": "Smith", "city": "Denver",
                                                      "state": "CO"},
                            settings={"base_url": vendor.url_for("/").rstrip("/"), "enabled_by_user": True,
                                      "request_interval": 0}, step={"rate_limit": {"per_second": 1000}})
    assert run.record.status == "succeeded", run.record.error
    assert len(run.fields["phones"]) == 50          # max_phones: a bounded field on the lead
    assert texts < 500                               # work per phone read, not per phone on the page
    # parsed in a worker thread: the event loop (and every other lead) kept running meanwhile
    assert len(threads) == 1 and threads[0] != threading.main_thread().name
