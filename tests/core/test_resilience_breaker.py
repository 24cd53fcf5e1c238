"""Circuit breakers: the state machine, exactly N half-open probes under concurrency, the
``exhausted`` cause, manual reset, and 200 concurrent leads against a vendor that is down
falling through a waterfall. Time is a fake clock, so ``reset_after`` passes when a test says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from faultserver import FaultServer, ok, slow, status, vendor
from waystation import BreakerPolicy, Engine, hookimpl
from waystation.resilience.breaker import BreakerBackend, BreakerState, CircuitBreaker, MemoryBreakerBackend
from waystation.result import LeadResult

Primary = vendor("Primary")
Backup = vendor("Backup")


class Clock:
    """A clock that moves only when told."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Changes:
    """Records breaker state changes from the hook."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []

    @hookimpl
    def on_breaker_change(self, station: str, old: str, new: str, cause: str | None) -> None:
        self.seen.append((old, new, cause))


@pytest.fixture
def srv() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


async def check_state_machine(backend: BreakerBackend, name: str) -> None:
    """The breaker's rules, step by step, on any backend (memory here, Redis in its own tests)."""
    p = BreakerPolicy(failure_threshold=2, reset_after=10, half_open_max_calls=2, reset_after_exhausted=100)
    t = 1_000_000.0

    async def acquire(at: float) -> bool:
        allowed, _, _ = await backend.acquire(name, p, at)
        return allowed

    async def record(at: float, ok: bool | None, cause: str | None = None) -> tuple[str, str | None, int]:
        _, after = await backend.record(name, p, at, ok, cause)
        return after.state.value, after.cause, after.failures

    assert await acquire(t)
    assert await record(t, False, "server_error") == ("closed", None, 1)
    assert await record(t, True) == ("closed", None, 0)  # consecutive failures only
    await record(t, False, "timeout")
    assert await record(t, False, "timeout") == ("open", "failures", 2)
    assert not await acquire(t + 5)
    # late results of calls made before it opened change nothing
    assert await record(t + 6, True) == ("open", "failures", 2)
    await record(t + 6, False, "timeout")
    assert (await backend.snapshot(name)).opened_at == t
    # half-open after reset_after: exactly two probes
    assert [await acquire(t + 10) for _ in range(4)] == [True, True, False, False]
    assert (await backend.snapshot(name)).state is BreakerState.HALF_OPEN
    await record(t + 11, None)  # a cancelled probe gives its slot back
    assert [await acquire(t + 11) for _ in range(2)] == [True, False]
    # probes that never report free their slots after reset_after (a dead worker)
    assert await acquire(t + 20)
    assert await record(t + 21, False, "server_error") == ("open", "failures", 3)
    assert await acquire(t + 31)
    assert await record(t + 31, True) == ("closed", None, 0)
    # exhausted: stays open past reset_after, until reset_after_exhausted
    assert await record(t + 40, False, "exhausted") == ("open", "exhausted", 1)
    assert not await acquire(t + 60)
    assert await acquire(t + 140)
    await backend.reset(name)
    snap = await backend.snapshot(name)
    assert (snap.state, snap.failures, snap.cause) == (BreakerState.CLOSED, 0, None)


async def test_state_machine_in_memory() -> None:
    await check_state_machine(MemoryBreakerBackend(), "S")


async def test_exactly_half_open_max_calls_probes_under_concurrency() -> None:
    clock = Clock()
    changes: list[tuple[str, str]] = []
    cb = CircuitBreaker("S", BreakerPolicy(failure_threshold=1, reset_after=5, half_open_max_calls=3),
                        on_change=lambda n, o, new, c: changes.append((o.value, new.value)), clock=clock)
    assert await cb.allow()
    await cb.record(False, "server_error")
    clock.now += 5
    allowed = await asyncio.gather(*(cb.allow() for _ in range(200)))
    assert sum(allowed) == 3
    await cb.record(True)
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def waterfall(srv: FaultServer, **primary: Any) -> str:
    base = {"base_url": srv.url}
    steps = [
        {"id": "primary", "station": "Primary", "settings": {**base, "path": "/primary"}, "timeout": 10,
         "retry": {"max_attempts": 3, "base_delay": 0.1},
         "breaker": {"failure_threshold": 5, "reset_after": 30, "half_open_max_calls": 1}, **primary},
        {"id": "backup", "station": "Backup", "settings": {**base, "path": "/backup"}, "fallback": True},
    ]
    return yaml.safe_dump({"name": "waterfall", "input": ["id", "phone"], "steps": steps})


async def wave(engine: Engine, tag: str, n: int = 200) -> list[LeadResult]:
    return list(await asyncio.gather(*(engine.run({"id": f"{tag}{i}", "phone": f"+1415555{i:04d}"})
                                       for i in range(n))))


def outcomes(results: list[LeadResult], step: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in results:
        rec = r.steps[step]
        key = rec.status + ":" + (rec.reason or rec.error_category or "")
        out[key] = out.get(key, 0) + 1
    return out


async def test_200_leads_against_a_down_vendor_fall_through_the_waterfall(srv: FaultServer) -> None:
    srv.default("/primary", status(503))
    srv.default("/backup", ok({"line_type": "landline"}))
    clock, changes = Clock(), Changes()
    text = waterfall(srv, rate_limit={"concurrent": 10})
    async with Engine.from_text(text, [Primary, Backup], plugins=[changes]) as engine:
        breaker = engine.breaker("Primary")
        assert breaker is not None
        breaker.clock = clock

        # wave 1: the breaker opens after 5 consecutive failures; calls already admitted to one of
        # the 10 concurrency slots finish, nothing else reaches the vendor
        first = await wave(engine, "a")
        calls = srv.count("/primary")
        assert 5 <= calls <= 5 + 10 - 1
        assert changes.seen == [("closed", "open", "failures")]
        assert all(r.data["line_type"] == "landline" for r in first)
        assert srv.count("/backup") == 200
        # failed:breaker_open: a call went out, then the retry found the breaker open;
        # skipped:breaker_open: it opened before any call of the step went out
        assert set(outcomes(first, "primary")) <= {"failed:server_error", "failed:breaker_open", "skipped:breaker_open"}

        # wave 2, before reset_after: no call, no cost, no retry: skipped with breaker_open
        second = await wave(engine, "b")
        assert srv.count("/primary") == calls
        assert outcomes(second, "primary") == {"skipped:breaker_open": 200}
        assert all(r.steps["primary"].attempts == 0 and "primary" not in r.costs for r in second)
        assert all(r.data["line_type"] == "landline" for r in second)

        # wave 3, after reset_after, vendor still down: exactly one probe, open again
        clock.now += 30
        third = await wave(engine, "c")
        assert srv.count("/primary") == calls + 1
        assert outcomes(third, "primary") == {"failed:server_error": 1, "skipped:breaker_open": 199}
        assert changes.seen[1:] == [("open", "half_open", "failures"), ("half_open", "open", "failures")]

        # wave 4, vendor back: one probe closes it
        srv.default("/primary", ok())
        clock.now += 30
        fourth = await wave(engine, "d")
        assert srv.count("/primary") == calls + 2
        assert outcomes(fourth, "primary") == {"succeeded:": 1, "skipped:breaker_open": 199}
        assert changes.seen[3:] == [("open", "half_open", "failures"), ("half_open", "closed", None)]

        # wave 5: closed, every lead calls the primary again and the backup is not needed
        fifth = await wave(engine, "e")
        assert srv.count("/primary") == calls + 2 + 200
        assert outcomes(fifth, "backup") == {"skipped:fallback_not_needed": 200}
        assert all(r.data["line_type"] == "mobile" for r in fifth)


async def test_half_open_lets_exactly_n_slow_probes_through(srv: FaultServer) -> None:
    srv.script("/primary", status(500))
    srv.default("/primary", slow(0.2))
    clock = Clock()
    text = waterfall(srv, breaker={"failure_threshold": 1, "reset_after": 10, "half_open_max_calls": 3},
                     retry={"max_attempts": 1})
    async with Engine.from_text(text, [Primary, Backup]) as engine:
        engine.breaker("Primary").clock = clock  # type: ignore[union-attr]
        await wave(engine, "a", 1)
        clock.now += 10
        results = await wave(engine, "b", 100)
    assert srv.count("/primary") == 1 + 3
    assert outcomes(results, "primary") == {"succeeded:": 3, "skipped:breaker_open": 97}


async def test_exhausted_stays_open_until_reset_after_exhausted_or_a_manual_reset(srv: FaultServer) -> None:
    srv.script("/primary", status(402))
    srv.default("/primary", ok())
    clock, changes = Clock(), Changes()
    text = waterfall(srv, breaker={"failure_threshold": 5, "reset_after": 30, "reset_after_exhausted": 3600})
    async with Engine.from_text(text, [Primary, Backup], plugins=[changes]) as engine:
        breaker = engine.breaker("Primary")
        assert breaker is not None
        breaker.clock = clock
        [r] = await wave(engine, "a", 1)
        assert (r.steps["primary"].error_category, r.steps["primary"].attempts) == ("exhausted", 1)
        assert changes.seen == [("closed", "open", "exhausted")]
        clock.now += 600  # far past reset_after: no probe for an exhausted account
        assert outcomes(await wave(engine, "b", 20), "primary") == {"skipped:breaker_open": 20}
        assert srv.count("/primary") == 1
        await breaker.reset()  # what `waystation breaker reset Primary` does for a shared breaker
        assert changes.seen[-1] == ("open", "closed", None)
        assert outcomes(await wave(engine, "c", 20), "primary") == {"succeeded:": 20}
        # and on its own, after reset_after_exhausted
        srv.script("/primary", status(402))
        await wave(engine, "d", 1)
        clock.now += 3600
        assert outcomes(await wave(engine, "e", 5), "primary") == {"succeeded:": 1, "skipped:breaker_open": 4}
        assert changes.seen[-2:] == [("open", "half_open", "exhausted"), ("half_open", "closed", None)]


async def test_a_cancelled_probe_gives_its_slot_back(srv: FaultServer) -> None:
    srv.script("/primary", status(500), slow(30))
    srv.default("/primary", ok())
    clock = Clock()
    text = waterfall(srv, breaker={"failure_threshold": 1, "reset_after": 10, "half_open_max_calls": 1})
    async with Engine.from_text(text, [Primary, Backup]) as engine:
        breaker = engine.breaker("Primary")
        assert breaker is not None
        breaker.clock = clock
        await wave(engine, "a", 1)
        clock.now += 10
        probe = asyncio.create_task(engine.run({"id": "p", "phone": "+14155550000"}))
        while srv.count("/primary") < 2:
            await asyncio.sleep(0.01)
        assert outcomes(await wave(engine, "b", 5), "primary") == {"skipped:breaker_open": 5}
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        # the clock has not moved: only the released slot lets the next probe through
        assert outcomes(await wave(engine, "c", 1), "primary") == {"succeeded:": 1}
        assert (await breaker.state()).state is BreakerState.CLOSED


async def test_breaker_false_in_the_route_turns_it_off(srv: FaultServer) -> None:
    srv.default("/primary", status(503))
    text = waterfall(srv, breaker=False, retry={"max_attempts": 1})
    async with Engine.from_text(text, [Primary, Backup]) as engine:
        assert engine.breaker("Primary") is None
        results = await wave(engine, "a", 30)
    assert srv.count("/primary") == 30
    assert outcomes(results, "primary") == {"failed:server_error": 30}
