"""Checkpointing cost: leads/s of the engine with the SQLite and Redis stores, against hand-written
asyncio baselines checkpointing the same 7 steps per lead, in the same process.

Every variant runs N leads (default 20,000) with C in flight (default 500) through 7 no-op steps
and durably writes the lead's whole state (JSON) after every step and once at the end, as the
engine does. Variants:

- ``baseline sqlite, commit per write``: one writer thread, each write its own transaction.
- ``baseline sqlite, group commit``: one writer thread taking everything queued per transaction.
- ``engine, no checkpoints``: the engine alone (the ceiling for the engine variants).
- ``engine + SQLiteStore``: the engine with ``sqlite:///...`` (WAL, synchronous=FULL by default).
- ``baseline redis, command per write`` / ``group pipeline`` and ``engine + RedisStore`` when Redis
  answers on 127.0.0.1:6379 (skipped otherwise).

All SQLite variants use the same ``synchronous`` level (``--synchronous``, default ``full``).
Prints leads/s of each (median of ``--repeat``), saves per transaction, and ratios. A benchmark,
not a test::

    python bench/checkpoint.py [--leads 20000] [--in-flight 500] [--repeat 3] [--synchronous full]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from waystation import Engine, Outcome, Station, StepContext
from waystation.stores import open_store

STEPS = 7
REDIS_URL = os.environ.get("WAYSTATION_BENCH_REDIS", "redis://127.0.0.1:6379/0")


def make_station(i: int) -> type[Station]:
    field = f"f{i}"
    outcome = Outcome({field: f"value-{i}"})

    async def process(self: Station, ctx: StepContext) -> Outcome:
        return outcome

    return type(f"Noop{i}", (Station,), {
        "name": f"Noop{i}", "provides": {field: str}, "requires": (f"f{i - 1}",) if i else (),
        "process": process, "__doc__": "no-op", "timeout": None,
    })


STATIONS = [make_station(i) for i in range(STEPS)]
ROUTE = "name: checkpoint-bench\nsteps:\n" + "".join(f"  - station: Noop{i}\n" for i in range(STEPS))


def lead(i: int) -> dict[str, Any]:
    return {"id": f"lead-{i}", "first_name": "Ada", "last_name": "Lovelace", "city": "Austin", "state": "TX"}


async def bounded(n: int, in_flight: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Run ``one(i)`` for i < n with ``in_flight`` workers; returns seconds."""
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            await one(i)

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return time.perf_counter() - t


# -- hand-written baselines ------------------------------------------------------------------------

_DDL = ("CREATE TABLE IF NOT EXISTS ckpt (run_id TEXT NOT NULL, lead_id TEXT NOT NULL, state TEXT NOT NULL, "
        "PRIMARY KEY (run_id, lead_id)) WITHOUT ROWID")
_SQL = "INSERT OR REPLACE INTO ckpt (run_id, lead_id, state) VALUES (?, ?, ?)"


def _open_sqlite(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(_DDL)
    return conn


class SqliteWriter:
    """A hand-written writer thread; ``group`` takes everything queued into one transaction."""

    def __init__(self, path: Path, synchronous: str, group: bool) -> None:
        self.conn = _open_sqlite(path, synchronous)
        self.group = group
        self.q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.transactions = 0
        self.thread = threading.Thread(target=self.main, daemon=True)
        self.thread.start()

    def main(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                break
            items = [item]
            if self.group:
                while True:
                    try:
                        more = self.q.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self.q.put(None)
                        break
                    items.append(more)
            self.conn.execute("BEGIN")
            self.conn.executemany(_SQL, [it[0] for it in items])
            self.conn.execute("COMMIT")
            self.transactions += 1
            by_loop: dict[Any, list[Any]] = {}
            for _, fut in items:
                by_loop.setdefault(fut.get_loop(), []).append(fut)
            for loop, futs in by_loop.items():
                loop.call_soon_threadsafe(_done, futs)

    async def write(self, row: tuple[str, str, str]) -> None:
        fut = asyncio.get_running_loop().create_future()
        self.q.put((row, fut))
        await fut

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()
        self.conn.close()


def _done(futs: list[asyncio.Future[None]]) -> None:
    for f in futs:
        if not f.done():
            f.set_result(None)


async def hand_lead(i: int, write: Callable[[tuple[str, str, str]], Awaitable[None]], run_id: str) -> None:
    async def step(s: int) -> dict[str, Any]:
        return {f"f{s}": f"value-{s}"}

    data = lead(i)
    lid = data["id"]
    steps: dict[str, Any] = {}
    for s in range(STEPS):
        data.update(await step(s))
        steps[f"Noop{s}"] = {"status": "succeeded", "attempts": 1, "hit": True}
        await write((run_id, lid, json.dumps({"lead_id": lid, "data": data, "steps": steps, "status": "running"})))
    await write((run_id, lid, json.dumps({"lead_id": lid, "data": data, "steps": steps, "status": "succeeded"})))


async def baseline_sqlite(n: int, in_flight: int, path: Path, synchronous: str, group: bool) -> tuple[float, int]:
    writer = SqliteWriter(path, synchronous, group)
    run_id = uuid.uuid4().hex
    try:
        secs = await bounded(n, in_flight, lambda i: hand_lead(i, writer.write, run_id))
    finally:
        await asyncio.to_thread(writer.close)
    return secs, writer.transactions


async def baseline_redis(n: int, in_flight: int, group: bool, prefix: str) -> tuple[float, int]:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL, max_connections=in_flight + 10)
    count = 0
    pending: list[tuple[tuple[str, str, str], asyncio.Future[None]]] = []
    flushing: asyncio.Task[None] | None = None

    async def flush() -> None:
        nonlocal count
        while pending:
            batch = pending[:]
            pending.clear()
            pipe = client.pipeline(transaction=True)
            for (run, lid, text), _ in batch:
                pipe.set(f"{prefix}:{run}:{lid}", text, ex=3600)
            await pipe.execute()
            count += 1
            for _, f in batch:
                f.set_result(None)

    async def write_group(row: tuple[str, str, str]) -> None:
        nonlocal flushing
        fut = asyncio.get_running_loop().create_future()
        pending.append((row, fut))
        if flushing is None or flushing.done():
            flushing = asyncio.ensure_future(flush())
        await fut

    async def write_one(row: tuple[str, str, str]) -> None:
        nonlocal count
        await client.set(f"{prefix}:{row[0]}:{row[1]}", row[2], ex=3600)
        count += 1

    run_id = uuid.uuid4().hex
    try:
        secs = await bounded(n, in_flight, lambda i: hand_lead(i, write_group if group else write_one, run_id))
    finally:
        keys = [k async for k in client.scan_iter(f"{prefix}:{run_id}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start:start + 1000])
        await client.aclose()
    return secs, count


# -- the engine ------------------------------------------------------------------------------------

async def engine_run(n: int, in_flight: int, url: str | None) -> tuple[float, int]:
    store = open_store(url) if url else None
    run_id = uuid.uuid4().hex
    engine = Engine.from_text(ROUTE, STATIONS, checkpointer=store, run_id=run_id)

    async def one(i: int) -> None:
        result = await engine.run(lead(i))
        assert result.status == "succeeded", result

    try:
        secs = await bounded(n, in_flight, one)
    finally:
        await engine.close()
        if store is not None:
            if url and url.startswith("redis"):
                await store.delete_run(run_id)  # type: ignore[attr-defined]
            await store.close()
    return secs, (store.stats.transactions if store is not None else 0)  # type: ignore[attr-defined]


async def redis_up() -> bool:
    try:
        from redis.asyncio import Redis
    except ImportError:
        return False
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--synchronous", default="full", choices=["full", "normal"])
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--dir", default=None, help="where the SQLite files go (default: a temp dir)")
    args = parser.parse_args()
    n, c, sync = args.leads, args.in_flight, args.synchronous
    use_redis = not args.no_redis and asyncio.run(redis_up())
    prefix = f"wsbench-{uuid.uuid4().hex[:8]}"
    results: dict[str, list[tuple[float, int]]] = {}

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        def db(name: str, k: int) -> Path:
            return Path(tmp) / f"{name}-{k}.db"

        variants: dict[str, Callable[[int], Awaitable[tuple[float, int]]]] = {
            "baseline sqlite, commit per write": lambda k: baseline_sqlite(
                max(n // 10, 1), c, db("per", k), sync, False),
            "baseline sqlite, group commit": lambda k: baseline_sqlite(n, c, db("group", k), sync, True),
            "engine, no checkpoints": lambda k: engine_run(n, c, None),
            "engine + SQLiteStore": lambda k: engine_run(n, c, f"sqlite:///{db('engine', k)}?synchronous={sync}"),
        }
        if use_redis:
            variants |= {
                "baseline redis, command per write": lambda k: baseline_redis(max(n // 4, 1), c, False, prefix),
                "baseline redis, group pipeline": lambda k: baseline_redis(n, c, True, prefix),
                "engine + RedisStore": lambda k: engine_run(n, c, f"{REDIS_URL}?ttl=3600&prefix={prefix}"),
            }
        for k in range(args.repeat):
            for name, fn in variants.items():
                results.setdefault(name, []).append(asyncio.run(fn(k)))

    def rate(name: str) -> float:
        secs = statistics.median(s for s, _ in results[name])
        count = max(n // 10, 1) if name.endswith("commit per write") else \
            max(n // 4, 1) if name.endswith("command per write") else n
        return count / secs

    writes = STEPS + 1
    print(f"{n} leads x {STEPS} steps, {writes} durable writes per lead, {c} in flight, "
          f"synchronous={sync}, median of {args.repeat}")
    print(f"{'variant':36} {'leads/s':>10} {'writes/txn':>11}")
    for name, runs in results.items():
        count = max(n // 10, 1) if name.endswith("commit per write") else \
            max(n // 4, 1) if name.endswith("command per write") else n
        txns = statistics.median(t for _, t in runs)
        per = f"{count * writes / txns:.1f}" if txns else "-"
        print(f"{name:36} {rate(name):>10,.0f} {per:>11}")
    eng = rate("engine + SQLiteStore")
    print(f"engine+SQLite / baseline sqlite group commit:   {eng / rate('baseline sqlite, group commit'):.2f}")
    print(f"engine+SQLite / baseline sqlite commit-per-write: {eng / rate('baseline sqlite, commit per write'):.1f}")
    print(f"engine+SQLite / engine without checkpoints:     {eng / rate('engine, no checkpoints'):.2f}")
    if use_redis:
        er = rate("engine + RedisStore")
        print(f"engine+Redis / baseline redis group pipeline:   {er / rate('baseline redis, group pipeline'):.2f}")
        print(f"engine+Redis / baseline redis command-per-write: {er / rate('baseline redis, command per write'):.1f}")
    else:
        print("Redis: not reachable on 127.0.0.1:6379, skipped")
    print(f"engine+SQLite: {eng:,.0f} leads/s (target >= 5,000)")


if __name__ == "__main__":
    main()
