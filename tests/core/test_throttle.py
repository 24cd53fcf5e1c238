"""Shared throttling and deferred leads, against a real vendor on 127.0.0.1.

A vendor that answers 429 with a wait pauses *every* call of that station (one Throttle per
station, in the process and through Redis across workers); a wait longer than the retry policy
allows defers the lead (resumable) instead of burning attempts. Waits here are real (this module
switches the test-mode "no retry waits" off), so the vendor's request log can show that nothing
was called during a wait.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from pydantic import Field
from pytest_httpserver import HTTPServer
from services import REDIS_URL, purge_prefix, redis_available
from waystation import Engine, Outcome, RetryPolicy, Station, StepContext
from waystation.deferral import run_settled
from waystation.http import VendorClient, VendorSettings
from waystation.resilience.redis_shared import SharedRedis
from waystation.resilience.throttle import RedisThrottle
from waystation.stores import open_store
from waystation.testing.harness import fast_retries
from werkzeug import Request, Response


@pytest.fixture(autouse=True)
def waystation_fast_retries() -> Iterator[None]:
    """Real waits in this module (overrides the waystation pytest plugin's fixture)."""
    yield


class ToySettings(VendorSettings):
    """Settings of the toy vendor station."""

    base_url: str = "https://api.toy.example"
    price: float = Field(default=0.01)


class ThrottledVendor(Station):
    """Looks the phone up at a toy vendor through waystation.http. $0.01 a call."""

    name = "ThrottledVendor"
    requires = ("phone",)
    provides: ClassVar[dict[str, Any]] = {"line_type": str}
    cost = 0.01
    paid = True
    retry = RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=5.0, jitter=0)
    Settings = ToySettings
    vendor_hosts = ("api.toy.example",)

    async def open(self) -> None:
        s = self.settings
        assert isinstance(s, ToySettings)
        self.http = VendorClient(self.name, s.base_url, vendor="Toy", hosts=self.vendor_hosts,
                                 allow_hosts=s.allow_hosts)
        await self.http.open()

    async def close(self) -> None:
        await self.http.aclose()

    async def process(self, ctx: StepContext) -> Outcome:
        resp = await self.http.get(f"v1/{ctx.data['phone']}")
        resp.raise_for_status()
        return Outcome({"line_type": resp.json()["line_type"]}, cost=0.01)


class FreeFirst(Station):
    """A free step before the vendor (counts its calls)."""

    name = "FreeFirst"
    requires = ("phone",)
    provides: ClassVar[dict[str, Any]] = {"seen": bool}
    calls = 0

    async def process(self, ctx: StepContext) -> Outcome:
        type(self).calls += 1
        return Outcome({"seen": True})


class Vendor:
    """A vendor that answers 429 + Retry-After for ``wait`` seconds after its first call."""

    def __init__(self, server: HTTPServer, wait: float, limited_calls: int = 1) -> None:
        self.server = server
        self.wait = wait
        self.limited_calls = limited_calls
        self.lock = threading.Lock()
        self.arrivals: list[tuple[float, int]] = []  # (monotonic arrival, status answered)
        self.window: tuple[float, float] | None = None
        server.expect_request(__import__("re").compile(r"^/v1/.+$")).respond_with_handler(self.handle)

    def handle(self, _: Request) -> Response:
        now = time.monotonic()
        with self.lock:
            limited = sum(1 for _, s in self.arrivals if s == 429)
            if limited < self.limited_calls:
                if self.window is None:
                    self.window = (now, now + self.wait)
                self.arrivals.append((now, 429))
                return Response('{"errors": [{"code": "10011", "title": "Too many requests"}]}', status=429,
                                headers={"Retry-After": f"{self.wait:g}"}, content_type="application/json")
            self.arrivals.append((now, 200))
        return Response('{"line_type": "mobile"}', content_type="application/json")

    def calls_during_wait(self) -> list[float]:
        assert self.window is not None
        start, end = self.window
        return [t - start for t, s in self.arrivals if start < t < end - 0.01]


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    srv = HTTPServer(host="127.0.0.1", port=0)
    srv.start()
    yield srv
    srv.clear()
    srv.stop()


def route(server: HTTPServer, *, concurrent: int | None = 1, retry: dict[str, Any] | None = None,
          extra: str = "", first: bool = False) -> str:
    limit = f"    rate_limit: {{concurrent: {concurrent}}}\n" if concurrent else ""
    text = "name: throttled\nbudget: 1\nsteps:\n"
    if first:
        text += "  - station: FreeFirst\n"
    text += (f"  - station: ThrottledVendor\n    settings: {{base_url: '{server.url_for('/').rstrip('/')}', "
             f"allow_hosts: ['127.0.0.1']}}\n" + limit + extra)
    if retry:
        text += f"    retry: {retry}\n".replace("'", "")
    return text


async def test_fifty_leads_in_flight_wait_out_one_429_together(server: HTTPServer) -> None:
    vendor = Vendor(server, wait=2.0)
    engine = Engine.from_text(route(server), [ThrottledVendor])
    leads = [{"id": f"L{i:02d}", "phone": f"+1415555{i:04d}"} for i in range(50)]
    async with engine:
        results = await asyncio.gather(*(engine.run(lead) for lead in leads))
    # the vendor received no call during its 2-second wait
    assert vendor.calls_during_wait() == []
    # and no lead failed for it: one 429 in all, every lead looked up once, paid once
    statuses = [s for _, s in vendor.arrivals]
    assert statuses.count(429) == 1 and statuses.count(200) == 50
    assert [r.status for r in results] == ["succeeded"] * 50
    assert all(r.data["line_type"] == "mobile" for r in results)
    assert sum(r.total_cost for r in results) == pytest.approx(0.50)
    attempts = sorted(r.steps["ThrottledVendor"].attempts for r in results)
    assert attempts == [1] * 49 + [2]  # only the lead that got the 429 used a second attempt
    throttle = engine.throttle("ThrottledVendor")
    assert throttle is not None and [round(s, 1) for _, s in throttle.pauses] == [2.0]


async def test_without_a_concurrency_cap_leads_sent_after_the_429_wait_too(server: HTTPServer) -> None:
    # every request in flight when the first 429 is answered also gets one (the vendor's window);
    # none is sent after a 429 has come back until the wait is over
    vendor = Vendor(server, wait=1.0, limited_calls=10_000)
    vendor.limited_calls = 10_000

    def stop_limiting() -> None:
        vendor.limited_calls = 0

    engine = Engine.from_text(route(server, concurrent=None, retry={"max_attempts": 4, "max_delay": 5}),
                              [ThrottledVendor])
    leads = [{"id": f"M{i:02d}", "phone": f"+1415556{i:04d}"} for i in range(20)]
    loop = asyncio.get_running_loop()
    loop.call_later(0.5, stop_limiting)
    async with engine:
        results = await asyncio.gather(*(engine.run(lead) for lead in leads))
    assert [r.status for r in results] == ["succeeded"] * 20
    limited = [t for t, s in vendor.arrivals if s == 429]
    answered = [t for t, s in vendor.arrivals if s == 200]
    assert len(answered) == 20
    # after the first 429 answer, the next call came only once its 1-second wait had passed
    first_429 = min(limited)
    assert all(t >= first_429 + 0.99 for t in answered)


async def test_a_wait_longer_than_the_policy_defers_the_lead_and_it_resumes(server: HTTPServer,
                                                                          tmp_path: Any) -> None:
    vendor = Vendor(server, wait=30.0)  # the retry policy waits at most 5 s
    FreeFirst.calls = 0
    store = open_store(f"sqlite:///{tmp_path / 'ck.db'}")
    engine = Engine.from_text(route(server, first=True), [FreeFirst, ThrottledVendor], checkpointer=store,
                              run_id="r1")
    async with engine:
        first = await engine.run({"id": "D1", "phone": "+14155550100"})
        rec = first.steps["ThrottledVendor"]
        assert (first.status, rec.status, rec.reason, rec.attempts) == ("deferred", "pending", "deferred", 0)
        assert "asked to wait 30 s" in (first.reason or "") and first.total_cost == 0
        assert first.retry_at is not None and first.retry_at - time.time() > 25
        assert len(vendor.arrivals) == 1  # no attempt burnt on the known wait
        # the vendor lets calls through again (the test does not wait 30 s): the lead resumes
        vendor.window = None
        vendor.limited_calls = 0
        engine.throttle("ThrottledVendor")._until = 0.0  # type: ignore[union-attr]
        again = await engine.run({"id": "D1", "phone": "+14155550100"})
    assert (again.status, again.data["line_type"], again.total_cost) == ("succeeded", "mobile", 0.01)
    assert again.steps["ThrottledVendor"].attempts == 1 and again.steps["ThrottledVendor"].reason is None
    assert FreeFirst.calls == 1  # the completed step was not run again
    assert [s for _, s in vendor.arrivals] == [429, 200]
    await store.close()


async def test_run_settled_reruns_a_deferred_lead_without_a_checkpointer(server: HTTPServer) -> None:
    vendor = Vendor(server, wait=30.0)
    FreeFirst.calls = 0
    engine = Engine.from_text(route(server, first=True), [FreeFirst, ThrottledVendor])
    async with engine:
        with fast_retries():  # test mode: run_settled and the throttle do not sleep the 30 s
            vendor.limited_calls = 1
            result = await run_settled(engine, {"id": "D2", "phone": "+14155550101"})
    assert result.status == "succeeded" and result.total_cost == pytest.approx(0.01)
    assert FreeFirst.calls == 1 and [s for _, s in vendor.arrivals] == [429, 200]


@pytest.mark.redis
async def test_the_pause_is_shared_through_redis_across_workers(server: HTTPServer) -> None:
    await redis_available()
    prefix = f"wstest-{uuid.uuid4().hex[:10]}"
    vendor = Vendor(server, wait=1.5)
    text = route(server, extra="    breaker: {shared: redis}\n")
    a = Engine.from_text(text, [ThrottledVendor], redis_url=REDIS_URL, redis_prefix=prefix)
    b = Engine.from_text(text, [ThrottledVendor], redis_url=REDIS_URL, redis_prefix=prefix)
    try:
        async with a, b:
            first = await a.run({"id": "W1", "phone": "+14155550102"})  # 429, waits 1.5 s, succeeds
            assert first.status == "succeeded"
            # a second "worker" whose own process never saw a 429 still honours the shared pause
            await RedisThrottle(SharedRedis(REDIS_URL, prefix), "ThrottledVendor").pause(1.0)
            started = time.monotonic()
            second = await b.run({"id": "W2", "phone": "+14155550103"})
            assert second.status == "succeeded"
            assert [t for t, s in vendor.arrivals if s == 200][-1] >= started + 0.95
            assert b.throttle("ThrottledVendor").remaining_local() == 0  # type: ignore[union-attr]
    finally:
        await purge_prefix(prefix)


@pytest.mark.redis
async def test_a_shorter_pause_never_shortens_a_longer_one() -> None:
    await redis_available()
    prefix = f"wstest-{uuid.uuid4().hex[:10]}"
    shared = SharedRedis(REDIS_URL, prefix)
    try:
        t = RedisThrottle(shared, "X")
        await t.pause(5)
        await t.pause(1)
        assert 4 < await t.remaining() <= 5
        other = RedisThrottle(SharedRedis(REDIS_URL, prefix), "X")
        assert 4 < await other.remaining() <= 5
        assert await RedisThrottle(shared, "Y").remaining() == 0
    finally:
        await shared.aclose()
        await purge_prefix(prefix)


async def test_run_settled_does_not_sit_out_a_wait_longer_than_max_wait(server: HTTPServer) -> None:
    vendor = Vendor(server, wait=3600.0)
    engine = Engine.from_text(route(server), [ThrottledVendor])
    async with engine:
        result = await run_settled(engine, {"id": "D3", "phone": "+14155550104"}, max_wait=60)
    # it returned the lead deferred (with when to retry) instead of sitting out the hour
    assert result.status == "deferred" and result.retry_at is not None and result.retry_at > time.time() + 3000
    assert [s for _, s in vendor.arrivals] == [429]


async def test_an_unreachable_redis_leaves_the_pause_to_this_process(server: HTTPServer,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    vendor = Vendor(server, wait=0.5)
    text = route(server, extra="    breaker: {shared: redis}\n")
    with caplog.at_level("WARNING"):
        async with Engine.from_text(text, [ThrottledVendor], redis_url="redis://:hunter2@127.0.0.1:1/0") as engine:
            results = await asyncio.gather(*(engine.run({"id": f"U{i}", "phone": f"+1415557{i:04d}"})
                                             for i in range(5)))
    assert [r.status for r in results] == ["succeeded"] * 5
    assert [r.steps["ThrottledVendor"].status for r in results] == ["succeeded"] * 5
    assert vendor.calls_during_wait() == []  # the local pause still held every call back
    warned = [r for r in caplog.records if "pausing this process alone" in r.getMessage()]
    assert len(warned) == 1 and "hunter2" not in caplog.text
