"""Per-station rate limits: calls per second observed at a real server with 200 leads in flight,
no burst at start, the concurrency cap, and one limiter shared by every lead in the process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import yaml
from faultserver import FaultServer, slow, vendor
from waystation import Engine, Outcome, Station, StepContext

Limited = vendor("Limited")


@pytest.fixture
def srv() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def max_per_window(times: list[float], window: float = 1.0) -> int:
    """The most calls seen in any ``window``-second span [t, t + window)."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def route(srv: FaultServer, rate_limit: dict[str, object], path: str = "/v") -> str:
    step = {"station": "Limited", "settings": {"base_url": srv.url, "path": path}, "rate_limit": rate_limit,
            "timeout": 60}
    return yaml.safe_dump({"name": "limited", "input": ["id", "phone"], "steps": [step]})


async def test_rate_limit_holds_with_200_leads_in_flight(srv: FaultServer) -> None:
    limit = 40
    async with Engine.from_text(route(srv, {"per_second": limit}), [Limited]) as engine:
        results = await asyncio.gather(*(engine.run({"id": str(i), "phone": f"+1415555{i:04d}"})
                                         for i in range(200)))
    assert all(r.steps["Limited"].status == "succeeded" for r in results)
    times = srv.times("/v")
    assert len(times) == 200
    assert max_per_window(times) <= limit + 1
    # paced from the start, no burst of a full second's worth (aiolimiter #200); the slack is for
    # network jitter (the first call also opens the connection, so the second can catch it up)
    assert max_per_window(times, 0.25) <= limit * 0.25 + 3


async def test_concurrency_cap(srv: FaultServer) -> None:
    srv.default("/v", slow(0.05))
    async with Engine.from_text(route(srv, {"concurrent": 4}), [Limited]) as engine:
        results = await asyncio.gather(*(engine.run({"id": str(i), "phone": "+14155550100"}) for i in range(40)))
    assert all(r.data["line_type"] == "mobile" for r in results)
    assert srv.count("/v") == 40
    assert srv.max_active == 4


def test_a_limiter_follows_the_engine_into_a_new_event_loop() -> None:
    """aiolimiter warns (an error under this suite's RuntimeWarning filter) when one limiter is
    used from two loops; the station limiter makes its bucket per loop."""

    class Quick(Station):
        """Answers at once."""

        name = "Quick"
        provides = {"q": int}

        async def process(self, ctx: StepContext) -> Outcome:
            return Outcome({"q": 1})

    text = "name: r\nsteps:\n  - station: Quick\n    rate_limit: {per_second: 1000, concurrent: 2}\n"
    engine = Engine.from_text(text, [Quick])

    async def run_some() -> list[str]:
        rs = await asyncio.gather(*(engine.run({"id": str(i)}) for i in range(5)))
        return [r.status for r in rs]

    assert asyncio.run(run_some()) == ["succeeded"] * 5
    assert asyncio.run(run_some()) == ["succeeded"] * 5
    asyncio.run(engine.close())

