"""Checkpointing cost: leads/s of the engine with the SQLite and Redis stores, against hand-written
asyncio baselines checkpointing the same 7 steps per lead, in the same process.

Every variant runs N leads (default 20,000) through 7 no-op steps with C leads in flight (default:
both 100 and 500) and writes the lead's whole state (JSON) after every step and once at the end.
Variants:

- ``baseline sqlite, commit per write``: one writer thread, each write its own transaction
  (run on N/10 leads: it is slow).
- ``baseline sqlite, group commit``: one writer thread taking everything queued per transaction.
- ``baseline aiosqlite, group commit``: the same batching on aiosqlite (measured to choose between a
  dedicated ``sqlite3`` writer thread and aiosqlite for the store).
- ``engine, no checkpoints``: the engine alone (the ceiling for the engine variants).
- ``engine + SQLiteStore``: the engine with ``sqlite:///...`` as shipped: WAL, synchronous=FULL,
  group commit; the saves after free steps are queued (``save_nowait``), the end of each lead is
  waited for (paid steps would be too: see :mod:`waystation.stores`).
- ``engine + SQLiteStore, every save waited``: the same store with ``save_nowait`` hidden, so the
  engine waits for every one of the 8 saves per lead like the baselines do.
- ``baseline redis, command per write`` / ``group pipeline`` and ``engine + RedisStore`` when Redis
  answers on 127.0.0.1:6379 (skipped otherwise; SET ... EX per write in the baselines).

All SQLite variants use the same ``synchronous`` level (``--synchronous``, default ``full``).
Prints, per in-flight level, leads/s of each (median of ``--repeat``), writes per transaction,
process CPU per lead (steadier than the wall clock on a shared machine) and ratios. A benchmark,
not a test::

    python bench/checkpoint.py [--leads 20000] [--in-flight 100,500] [--repeat 3] [--synchronous full]
                               [--gc-threshold 20000] [--no-redis]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
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


CPU: dict[str, float] = {}


async def bounded(n: int, in_flight: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Run ``one(i)`` for i < n with ``in_flight`` workers; returns seconds (the process CPU
    seconds it used go to ``CPU["last"]``: on a busy machine they vary less than the wall clock)."""
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            await one(i)

    t, c = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    CPU["last"] = time.process_time() - c
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


class LoopGroupCommit:
    """The hand-written group commit of the loop-side baselines: ``write(row)`` queues the row and
    waits; one flusher hands everything queued so far to ``commit(rows)`` (one transaction or
    pipeline), then wakes every writer of that batch. ``commits`` counts the transactions."""

    def __init__(self, commit: Callable[[list[tuple[str, str, str]]], Awaitable[None]]) -> None:
        self.commit = commit
        self.commits = 0
        self.pending: list[tuple[tuple[str, str, str], asyncio.Future[None]]] = []
        self.flushing: asyncio.Future[None] | None = None

    async def _flush(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            await self.commit([row for row, _ in batch])
            self.commits += 1
            for _, f in batch:
                f.set_result(None)

    async def write(self, row: tuple[str, str, str]) -> None:
        fut = asyncio.get_running_loop().create_future()
        self.pending.append((row, fut))
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.ensure_future(self._flush())
        await fut


async def baseline_aiosqlite(n: int, in_flight: int, path: Path, synchronous: str) -> tuple[float, int]:
    """Group commit on aiosqlite (its own thread; one round trip per call): the alternative to a
    dedicated writer thread that the store chose not to use."""
    import aiosqlite

    db = await aiosqlite.connect(path, isolation_level=None)
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute(f"PRAGMA synchronous={synchronous}")
    await db.execute(_DDL)

    async def commit(rows: list[tuple[str, str, str]]) -> None:
        await db.execute("BEGIN")
        await db.executemany(_SQL, rows)
        await db.execute("COMMIT")

    group = LoopGroupCommit(commit)
    run_id = uuid.uuid4().hex
    try:
        secs = await bounded(n, in_flight, lambda i: hand_lead(i, group.write, run_id))
    finally:
        await db.close()
    return secs, group.commits


async def baseline_redis(n: int, in_flight: int, group: bool, prefix: str) -> tuple[float, int]:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL, max_connections=in_flight + 10)
    singles = 0

    async def commit(rows: list[tuple[str, str, str]]) -> None:
        pipe = client.pipeline(transaction=True)
        for run, lid, text in rows:
            pipe.set(f"{prefix}:{run}:{lid}", text, ex=3600)
        await pipe.execute()

    async def write_one(row: tuple[str, str, str]) -> None:
        nonlocal singles
        await client.set(f"{prefix}:{row[0]}:{row[1]}", row[2], ex=3600)
        singles += 1

    grouped = LoopGroupCommit(commit)
    run_id = uuid.uuid4().hex
    try:
        secs = await bounded(n, in_flight, lambda i: hand_lead(i, grouped.write if group else write_one, run_id))
    finally:
        keys = [k async for k in client.scan_iter(f"{prefix}:{run_id}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start:start + 1000])
        await client.aclose()
    return secs, grouped.commits if group else singles


# -- the engine ------------------------------------------------------------------------------------

class WaitEverySave:
    """A store seen without ``save_nowait``: the engine then waits for every save."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def load(self, run_id: str, lead_id: str) -> dict[str, Any] | None:
        return await self.store.load(run_id, lead_id)  # type: ignore[no-any-return]

    async def save(self, run_id: str, lead_id: str, state: dict[str, Any]) -> None:
        await self.store.save(run_id, lead_id, state)


async def engine_run(n: int, in_flight: int, url: str | None, wait_all: bool = False) -> tuple[float, int]:
    store = open_store(url) if url else None
    run_id = uuid.uuid4().hex
    checkpointer = WaitEverySave(store) if (wait_all and store is not None) else store
    engine = Engine.from_text(ROUTE, STATIONS, checkpointer=checkpointer, run_id=run_id)

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


def run_level(c: int, n: int, sync: str, repeat: int, tmp_dir: str | None, use_redis: bool, prefix: str) -> float:
    """Run every variant with ``c`` leads in flight, print the table; returns engine+SQLite leads/s."""
    writes = STEPS + 1
    results: dict[str, list[tuple[float, int]]] = {}
    cpu: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        def db(name: str, k: int, tmp: str = tmp) -> Path:
            return Path(tmp) / f"{name}-{k}.db"

        variants: dict[str, tuple[int, Callable[[int, int], Awaitable[tuple[float, int]]]]] = {
            "baseline sqlite, commit per write": (max(n // 10, 1), lambda k, m: baseline_sqlite(
                m, c, db("per", k), sync, False)),
            "baseline sqlite, group commit": (n, lambda k, m: baseline_sqlite(m, c, db("group", k), sync, True)),
            "baseline aiosqlite, group commit": (n, lambda k, m: baseline_aiosqlite(m, c, db("aio", k), sync)),
            "engine, no checkpoints": (n, lambda k, m: engine_run(m, c, None)),
            "engine + SQLiteStore": (n, lambda k, m: engine_run(
                m, c, f"sqlite:///{db('engine', k)}?synchronous={sync}")),
            "engine + SQLiteStore, every save waited": (n, lambda k, m: engine_run(
                m, c, f"sqlite:///{db('strict', k)}?synchronous={sync}", wait_all=True)),
        }
        if use_redis:
            variants |= {
                "baseline redis, command per write": (max(n // 4, 1), lambda k, m: baseline_redis(
                    m, c, False, prefix)),
                "baseline redis, group pipeline": (n, lambda k, m: baseline_redis(m, c, True, prefix)),
                "engine + RedisStore": (n, lambda k, m: engine_run(
                    m, c, f"{REDIS_URL}?ttl=3600&prefix={prefix}")),
                "engine + RedisStore, every save waited": (n, lambda k, m: engine_run(
                    m, c, f"{REDIS_URL}?ttl=3600&prefix={prefix}", wait_all=True)),
            }
        for k in range(repeat):  # interleaved, so a busy moment hurts every variant alike
            for name, (count, fn) in variants.items():
                counts[name] = count
                results.setdefault(name, []).append(asyncio.run(fn(k, count)))
                cpu.setdefault(name, []).append(CPU["last"])

    def rate(name: str) -> float:
        return counts[name] / statistics.median(secs for secs, _ in results[name])

    print(f"\n{n} leads x {STEPS} steps, {writes} writes per lead, {c} in flight, synchronous={sync}, "
          f"median of {repeat}")
    print(f"{'variant':42} {'leads/s':>9} {'writes/txn':>11} {'CPU us/lead':>12}")
    for name, runs in results.items():
        txns = statistics.median(t for _, t in runs)
        per = f"{counts[name] * writes / txns:.1f}" if txns else "-"
        us = statistics.median(cpu[name]) / counts[name] * 1e6
        print(f"{name:42} {rate(name):>9,.0f} {per:>11} {us:>12,.0f}")
    eng = rate("engine + SQLiteStore")
    print(f"engine+SQLite / baseline sqlite group commit:      {eng / rate('baseline sqlite, group commit'):.2f}")
    print(f"engine+SQLite / baseline sqlite commit per write:  "
          f"{eng / rate('baseline sqlite, commit per write'):.1f}")
    print(f"engine+SQLite (every save waited) / group baseline: "
          f"{rate('engine + SQLiteStore, every save waited') / rate('baseline sqlite, group commit'):.2f}")
    print(f"engine+SQLite / engine without checkpoints:        {eng / rate('engine, no checkpoints'):.2f}")
    if use_redis:
        er = rate("engine + RedisStore")
        print(f"engine+Redis / baseline redis group pipeline:      "
              f"{er / rate('baseline redis, group pipeline'):.2f}")
        print(f"engine+Redis / baseline redis command per write:   "
              f"{er / rate('baseline redis, command per write'):.1f}")
    else:
        print("Redis: not reachable on 127.0.0.1:6379, skipped")
    return eng


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--in-flight", default="100,500", help="comma-separated levels (default 100,500)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--synchronous", default="full", choices=["full", "normal"])
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--dir", default=None, help="where the SQLite files go (default: a temp dir)")
    parser.add_argument("--gc-threshold", type=int, default=None,
                        help="gc.freeze() and gc.set_threshold(N, 50, 50) for every variant (a batch "
                             "process may tune its GC this way; default: Python's defaults)")
    args = parser.parse_args()
    n, sync = args.leads, args.synchronous
    if args.gc_threshold:
        gc.freeze()
        gc.set_threshold(args.gc_threshold, 50, 50)
    use_redis = not args.no_redis and asyncio.run(redis_up())
    prefix = f"wsbench-{uuid.uuid4().hex[:8]}"
    headline: list[str] = []
    for c in [int(x) for x in args.in_flight.split(",")]:
        eng = run_level(c, n, sync, args.repeat, args.dir, use_redis, prefix)
        headline.append(f"{c} in flight: engine+SQLite {eng:,.0f} leads/s")
    print("\n" + "; ".join(headline) + " (target >= 5,000)")


if __name__ == "__main__":
    main()
