"""Shared breaker and rate limit in the real Redis on 127.0.0.1:6379, with engines in separate
processes (``python faultserver.py worker ...``) against one fault server.

Skipped when Redis is not running, except under ``CI=true`` where that is a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from faultserver import FaultServer, ok, slow, status
from services import require_redis
from test_resilience_breaker import check_state_machine
from test_resilience_ratelimit import max_per_window
from waystation import BreakerPolicy, Engine
from waystation.cli.main import cli
from waystation.resilience.breaker import BreakerState, CircuitBreaker
from waystation.resilience.redis_shared import RedisBreakerBackend, SharedRedis, SharedStateError

REDIS_URL = os.environ.get("WAYSTATION_TEST_REDIS", "redis://127.0.0.1:6379/0")
HERE = Path(__file__).parent


@pytest.fixture
async def shared() -> AsyncIterator[SharedRedis]:
    """A SharedRedis on a key prefix of its own; its keys are deleted afterwards."""
    require_redis()
    sr = SharedRedis(REDIS_URL, f"wstest-resilience-{uuid.uuid4().hex[:10]}")
    yield sr
    client = sr.client()
    keys = [k async for k in client.scan_iter(match=f"{sr.prefix}:*")]
    if keys:
        await client.delete(*keys)
    await sr.aclose()


@pytest.fixture
def srv() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.mark.redis
async def test_state_machine_in_redis(shared: SharedRedis) -> None:
    await check_state_machine(RedisBreakerBackend(shared), "S")


@pytest.mark.redis
async def test_half_open_probes_are_exact_under_concurrency_in_redis(shared: SharedRedis) -> None:
    now = [1_000_000.0]
    cb = CircuitBreaker("S", BreakerPolicy(failure_threshold=1, reset_after=5, half_open_max_calls=4),
                        RedisBreakerBackend(shared), clock=lambda: now[0])
    assert await cb.allow()
    await cb.record(False, "timeout")
    now[0] += 5
    allowed = await asyncio.gather(*(cb.allow() for _ in range(200)))
    assert sum(allowed) == 4
    assert (await cb.state()).state is BreakerState.HALF_OPEN


def test_shared_redis_without_a_url_is_refused_before_any_lead(monkeypatch: pytest.MonkeyPatch) -> None:
    from faultserver import ToyVendor

    monkeypatch.delenv("WAYSTATION_REDIS_URL", raising=False)
    text = "name: r\ninput: [phone]\nsteps:\n  - station: ToyVendor\n    breaker: {shared: redis}\n"
    with pytest.raises(SharedStateError, match="WAYSTATION_REDIS_URL"):
        Engine.from_text(text, [ToyVendor])


def _route(srv: FaultServer, **primary: Any) -> str:
    base = {"base_url": srv.url}
    steps = [
        {"id": "primary", "station": "Primary", "settings": {**base, "path": "/down"}, "timeout": 10,
         "retry": {"max_attempts": 1}, **primary},
        {"id": "backup", "station": "Backup", "settings": {**base, "path": "/backup"}, "fallback": True},
    ]
    return yaml.safe_dump({"name": "shared", "input": ["id", "phone"], "steps": steps})


async def _workers(shared: SharedRedis, route: str, specs: list[dict[str, Any]],
                   not_before: float = 0.0) -> tuple[float, list[dict[str, Any]]]:
    """Run one worker process per spec; return the common start time and their JSON summaries.

    Each process says ``ready`` once it has imported and built its engine; only then is the start
    time (``go``: at least 0.5 s from now and not before ``not_before``) sent to all of them, each
    starting ``delay`` seconds after it. Slow start-up on a loaded machine cannot shift the schedule.
    """
    procs = []
    for spec in specs:
        full = {"route": route, "stations": ["Primary", "Backup"], "redis_url": REDIS_URL,
                "prefix": shared.prefix, **{k: v for k, v in spec.items() if k != "delay"}}
        procs.append(await asyncio.create_subprocess_exec(
            sys.executable, str(HERE / "faultserver.py"), "worker", json.dumps(full),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE))
    for p in procs:
        assert p.stdout is not None
        line = await asyncio.wait_for(p.stdout.readline(), 120)
        assert line.strip() == b"ready", line
    go = max(time.time() + 0.5, not_before)
    for p, spec in zip(procs, specs, strict=True):
        assert p.stdin is not None
        p.stdin.write(f"{go + spec.get('delay', 0.0)}\n".encode())
        await p.stdin.drain()
    outs = []
    for p in procs:
        out, err = await asyncio.wait_for(p.communicate(), 120)
        assert p.returncode == 0, err.decode()[-3000:]
        outs.append(json.loads(out.decode().strip().splitlines()[-1]))
    return go, outs


@pytest.mark.redis
@pytest.mark.slow
async def test_two_processes_share_one_breaker(srv: FaultServer, shared: SharedRedis) -> None:
    srv.default("/down", status(503))
    srv.default("/backup", ok({"line_type": "landline"}))
    reset_after = 4.0
    route = _route(srv, breaker={"failure_threshold": 5, "reset_after": reset_after, "half_open_max_calls": 2,
                                 "shared": "redis"}, rate_limit={"concurrent": 5})
    t0, (a, b) = await _workers(shared, route, [
        {"tag": "a", "leads": 40},
        {"tag": "b", "leads": 40, "delay": 1.5},
    ])
    # process A opened the breaker; process B, starting later, never called the vendor
    assert [c[1:4] for c in a["changes"]] == [["closed", "open", "failures"]]
    opened = a["changes"][0][4]
    assert opened < t0 + 1.5
    calls = srv.count("/down")
    assert 5 <= calls <= 5 + 5 - 1
    assert max(srv.times("/down")) < t0 + 1.5
    assert b["steps"]["primary"] == {"skipped:breaker_open": 40} and b["changes"] == []
    assert a["filled"] == b["filled"] == 40

    # after reset_after, two processes with 30 leads each: exactly two probes in the whole fleet
    srv.default("/down", slow(0.5))
    _, (c, d) = await _workers(shared, route, [{"tag": "c", "leads": 30}, {"tag": "d", "leads": 30}],
                               not_before=opened + reset_after + 0.3)
    assert srv.count("/down") == calls + 2
    probes = c["steps"]["primary"].get("succeeded", 0) + d["steps"]["primary"].get("succeeded", 0)
    assert probes == 2
    assert c["filled"] == d["filled"] == 30
    snap = await RedisBreakerBackend(shared).snapshot("Primary")
    assert snap.state is BreakerState.CLOSED


@pytest.mark.redis
@pytest.mark.slow
async def test_two_processes_share_one_rate_limit(srv: FaultServer, shared: SharedRedis) -> None:
    limit = 20
    route = _route(srv, rate_limit={"per_second": limit, "shared": "redis"})
    _, outs = await _workers(shared, route, [{"tag": "a", "leads": 40}, {"tag": "b", "leads": 40}])
    assert [o["steps"]["primary"] for o in outs] == [{"succeeded": 40}, {"succeeded": 40}]
    times = srv.times("/down")
    assert len(times) == 80
    assert max_per_window(times) <= limit + 1  # the two processes together, not 20 each


@pytest.mark.redis
@pytest.mark.slow
async def test_two_processes_share_one_concurrency_cap(srv: FaultServer, shared: SharedRedis) -> None:
    srv.default("/down", slow(0.2))
    route = _route(srv, rate_limit={"concurrent": 3, "shared": "redis"})
    _, outs = await _workers(shared, route, [{"tag": "a", "leads": 15}, {"tag": "b", "leads": 15}])
    assert [o["steps"]["primary"] for o in outs] == [{"succeeded": 15}, {"succeeded": 15}]
    assert srv.count("/down") == 30
    assert srv.max_active == 3  # three in the whole fleet, not three per process
    assert await shared.client().zcard(shared.key("slots", "Primary")) == 0  # every slot given back


@pytest.mark.redis
async def test_cli_shows_and_resets_a_shared_breaker(srv: FaultServer, shared: SharedRedis) -> None:
    srv.default("/down", status(402))
    route = _route(srv, breaker={"failure_threshold": 5, "reset_after": 30, "reset_after_exhausted": 3600,
                                 "shared": "redis"})
    from faultserver import vendor

    stations = [vendor("Primary"), vendor("Backup")]
    async with Engine.from_text(route, stations, redis_url=REDIS_URL, redis_prefix=shared.prefix) as engine:
        r = await engine.run({"id": "1", "phone": "+14155550100"})
        assert r.steps["primary"].error_category == "exhausted"
        env = {"WAYSTATION_REDIS_URL": REDIS_URL, "WAYSTATION_REDIS_PREFIX": shared.prefix}
        runner = CliRunner()
        shown = await asyncio.to_thread(runner.invoke, cli, ["breaker", "status", "--json"], env=env)
        assert shown.exit_code == 0, shown.output
        [row] = json.loads(shown.output)
        assert (row["station"], row["state"], row["cause"]) == ("Primary", "open", "exhausted")
        assert row["probe_after"] == pytest.approx(row["opened_at"] + 3600)
        table = await asyncio.to_thread(runner.invoke, cli, ["breaker", "status", "Primary"], env=env)
        assert "exhausted" in table.output
        assert (await engine.run({"id": "2", "phone": "+14155550100"})).steps["primary"].reason == "breaker_open"
        done = await asyncio.to_thread(runner.invoke, cli, ["breaker", "reset", "Primary"], env=env)
        assert done.exit_code == 0 and "was open (exhausted)" in done.output
        srv.default("/down", ok())
        r3 = await engine.run({"id": "3", "phone": "+14155550100"})
        assert r3.steps["primary"].status == "succeeded"
    assert srv.count("/down") == 2
    assert REDIS_URL not in shown.output + table.output + done.output


async def test_an_unreachable_redis_fails_open_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Losing the shared state must not stop the leads: the breaker allows calls, the rate limit
    paces this process alone, and each says so once (not once per call)."""
    from waystation import Outcome, Station, StepContext

    class Quick(Station):
        """Answers at once."""

        name = "Quick"
        provides = {"q": int}

        async def process(self, ctx: StepContext) -> Outcome:
            return Outcome({"q": 1})

    text = ("name: r\nsteps:\n  - station: Quick\n    breaker: {shared: redis}\n"
            "    rate_limit: {per_second: 200, concurrent: 4, shared: redis}\n")
    with caplog.at_level("WARNING"):
        async with Engine.from_text(text, [Quick], redis_url="redis://:hunter2@127.0.0.1:1/0") as engine:
            results = await asyncio.gather(*(engine.run({"id": str(i)}) for i in range(20)))
            breaker = engine.breaker("Quick")
    assert [r.status for r in results] == ["succeeded"] * 20
    assert breaker is not None and breaker.degraded is not None
    failing = [r for r in caplog.records if "failing open" in r.getMessage()]
    pacing = [r for r in caplog.records if "pacing this process alone" in r.getMessage()]
    capping = [r for r in caplog.records if "capping this process alone" in r.getMessage()]
    assert len(failing) == 1 and len(pacing) == 1 and len(capping) == 1
    assert "hunter2" not in caplog.text


def test_cli_without_redis_explains_where_shared_breakers_live(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WAYSTATION_REDIS_URL", raising=False)
    result = CliRunner().invoke(cli, ["breaker", "reset", "RapidApiStation"])
    assert result.exit_code == 2
    assert "WAYSTATION_REDIS_URL" in result.output and "shared: redis" in result.output
