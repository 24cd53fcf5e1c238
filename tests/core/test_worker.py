"""Workers consuming a Redis Stream: at least once, reclaiming crashed workers' leads, dead letters."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from services import REDIS_URL, redis_available
from toys import make
from waystation import Engine
from waystation.worker import QueueConfig, Worker, enqueue, queue_depth

pytestmark = pytest.mark.redis


@pytest.fixture
async def redis():
    await redis_available()
    import redis.asyncio as redis_asyncio

    client = redis_asyncio.Redis.from_url(REDIS_URL)
    prefix = f"wstest:{uuid.uuid4().hex[:8]}"
    yield client, prefix
    keys = [k async for k in client.scan_iter(f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


ROUTE = "name: q\nsteps:\n  - station: Vendor\n  - station: Tail\n    requires: []\n"


def stations():
    vendor = make("Vendor", {"v": str}, cost=0.01, sleep=0.01)
    tail = make("Tail", {"t": str}, requires=("v",))
    return [vendor, tail]


async def results(client, cfg: QueueConfig) -> list[dict]:
    rows = await client.xrange(cfg.results_stream)
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in rows]


async def test_two_workers_share_the_stream_each_lead_once(redis) -> None:
    client, prefix = redis
    cfg = QueueConfig(stream=f"{prefix}:leads", claim_idle=5, block=0.1)
    assert await enqueue(client, cfg, [{"id": f"L{i}", "first_name": "Ada"} for i in range(40)]) == 40
    text = ROUTE.replace("    requires: []\n", "")
    workers = [Worker(Engine.from_text(text, stations()), client, cfg, consumer=f"w{i}", concurrency=8)
               for i in range(2)]
    stats = await asyncio.gather(*(w.run(idle_exit=0.5) for w in workers))
    rows = await results(client, cfg)
    assert sorted(r["lead_id"] for r in rows) == sorted(f"L{i}" for i in range(40))
    assert {r["status"] for r in rows} == {"succeeded"}
    assert all(s.done > 0 for s in stats)  # both workers took a share
    assert (await queue_depth(client, cfg))["pending"] == 0


async def test_poison_and_unreadable_leads_are_dead_lettered(redis) -> None:
    client, prefix = redis
    cfg = QueueConfig(stream=f"{prefix}:leads", max_deliveries=1, claim_idle=0.05, block=0.05)
    await enqueue(client, cfg, [{"id": "good"}, {"id": "poison"}])
    await client.xadd(cfg.stream, {"lead": "{not json", "lead_id": "garbled"})
    # a consumer that takes "good" and "poison" and dies without acknowledging them
    await client.xreadgroup(cfg.group, "crashed", {cfg.stream: ">"}, count=2)
    text = ROUTE.replace("    requires: []\n", "")
    worker = Worker(Engine.from_text(text, stations()), client, cfg, consumer="alive")
    await asyncio.sleep(0.1)
    await worker.run(idle_exit=0.5)
    dead = {f[b"lead_id"].decode(): f[b"reason"].decode() for _, f in await client.xrange(cfg.dead_stream)}
    assert set(dead) == {"good", "poison", "garbled"}
    assert "unreadable lead" in dead["garbled"] and "delivered 2 times" in dead["poison"]
    assert (await queue_depth(client, cfg))["pending"] == 0


WORKER_SCRIPT = textwrap.dedent("""
    import asyncio, os, sys
    sys.path.insert(0, {tests!r})
    import redis.asyncio as r
    from toys import make
    from waystation import Engine, Outcome, Station
    from waystation.stores import open_store
    from waystation.worker import QueueConfig, Worker

    class Vendor(Station):
        '''Counts its calls in Redis, then answers slowly.'''
        name = "Vendor"; provides = {{"v": str}}; cost = 0.01; in_doubt = "repay"
        async def open(self):
            self.r = r.Redis.from_url({url!r})
        async def process(self, ctx):
            await self.r.incr({counter!r})
            await asyncio.sleep(0.05)
            return Outcome({{"v": "x"}}, cost=0.01)

    async def main():
        client = r.Redis.from_url({url!r})
        store = open_store({store!r})
        engine = Engine.from_text({route!r}, [Vendor, make("Tail", {{"t": str}}, requires=("v",))],
                                  checkpointer=store, run_id={run!r})
        cfg = QueueConfig(stream={stream!r}, claim_idle={idle}, block=0.05)
        await Worker(engine, client, cfg, consumer=sys.argv[1], concurrency=4).run(idle_exit=1.0)
        await store.close()
    asyncio.run(main())
""")


async def test_a_killed_workers_leads_are_reclaimed_and_paid_steps_not_rebought(redis, tmp_path: Path) -> None:
    client, prefix = redis
    stream = f"{prefix}:leads"
    counter = f"{prefix}:vendor-calls"
    route = "name: q\nsteps:\n  - station: Vendor\n  - station: Tail\n"
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT.format(
        tests=str(Path(__file__).parent), url=REDIS_URL, counter=counter, route=route, run=prefix,
        store=f"{REDIS_URL}?prefix={prefix}", stream=stream, idle=0.5))
    cfg = QueueConfig(stream=stream)
    n = 30
    await enqueue(client, cfg, [{"id": f"L{i}"} for i in range(n)])
    victim = subprocess.Popen([sys.executable, str(script), "victim"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and int(await client.get(counter) or 0) < 6:
        await asyncio.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    survivor = subprocess.run([sys.executable, str(script), "survivor"], timeout=120)
    assert survivor.returncode == 0
    rows = await results(client, cfg)
    assert sorted(r["lead_id"] for r in rows) == sorted(f"L{i}" for i in range(n))  # every lead exactly once
    calls = int(await client.get(counter))
    assert n <= calls <= n + 4  # at most the victim's in-flight calls (concurrency 4) were bought again
    assert {r["status"] for r in rows} == {"succeeded"}
    assert (await queue_depth(client, cfg))["pending"] == 0
    # the results say which leads were in doubt: their cost counts both calls
    costs = sorted(float(r["cost"]) for r in rows)
    assert round(sum(costs), 6) == round(calls * 0.01, 6)
    assert all(json.loads(r["data"])["v"] == "x" for r in rows)
