"""The SQLite checkpoint store: one file, WAL mode, group commit through one writer thread.

The connection lives in a dedicated thread that owns it for its whole life. Callers on the event
loop put operations on a list and wait on an asyncio future; the thread takes *everything* queued
since its last turn, writes all the saves in one transaction (``executemany`` of an upsert, then
``COMMIT``), runs the reads, and resolves every future of the batch with a single
``call_soon_threadsafe``. While it commits, new saves pile up for the next batch — that is the
group commit. See :mod:`waystation.stores` for the durability choice (``synchronous=FULL``).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal, overload
from urllib.parse import unquote, urlsplit

from waystation.stores.base import (
    DeferredErrors,
    StoreStats,
    _check_ids,
    _query,
    dumps,
    encode_queued,
    load_state,
    loads,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lead_state (
    run_id     TEXT NOT NULL,
    lead_id    TEXT NOT NULL,
    status     TEXT,
    state      TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, lead_id)
);
CREATE TABLE IF NOT EXISTS run_meta (
    run_id     TEXT PRIMARY KEY,
    meta       TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
"""
_CHUNK = 400  # rows per multi-row INSERT (5 parameters each, far below SQLite's 32,766 limit)


def _upsert_sql(rows: int) -> str:
    """One statement for ``rows`` rows: a single ``sqlite3_step`` (one GIL release, not one per
    row as ``executemany`` does, which stalls a writer thread behind a busy event loop)."""
    return ("INSERT INTO lead_state (run_id, lead_id, status, state, updated_at) VALUES "
            + ",".join(["(?,?,?,?,?)"] * rows)
            + " ON CONFLICT (run_id, lead_id) DO UPDATE SET status = excluded.status, "
              "state = excluded.state, updated_at = excluded.updated_at")


_UPSERT_RUN = ("INSERT INTO run_meta (run_id, meta, created_at, updated_at) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (run_id) DO UPDATE SET meta = excluded.meta, updated_at = excluded.updated_at")
_PAGE = 500

# An operation: (kind, payload, future). kind "w" = lead save (payload: row tuple), "n" = queued
# lead save not yet encoded (payload: run_id, lead_id, state, time; no future), "r" = run save
# (payload: row tuple), "q" = callable(conn) run in the writer.
_Op = tuple[str, Any, "asyncio.Future[Any] | None"]
# What the writer reports per operation: (future or None, result, error).
_Done = tuple["asyncio.Future[Any] | None", Any, BaseException | None]


def path_of(url: str) -> Path:
    """The database file a ``sqlite://`` URL names (``sqlite://`` alone: the default file)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite":
        raise ValueError(f"not a sqlite URL: {url!r}")
    raw = unquote(parts.path)
    if parts.netloc:  # sqlite://relative/path.db — tolerate the missing third slash
        raw = parts.netloc + raw
    elif raw.startswith("/"):
        raw = raw[1:]  # sqlite:///rel.db -> rel.db, sqlite:////abs.db -> /abs.db
    if raw in ("", ":memory:"):
        if raw == ":memory:":
            raise ValueError("an in-memory SQLite store cannot survive a crash: use memory:// for tests")
        raw = ".waystation/checkpoints.db"
    return Path(raw)


class SQLiteStore:
    """Checkpoints in one SQLite file (WAL, no server); see the module docstring."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = path_of(url)
        opts = _query(url)
        sync = opts.get("synchronous", "full").upper()
        if sync not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be full, normal or extra, not {sync.lower()!r}")
        self.synchronous = sync
        self.busy_timeout = int(opts.get("busy_timeout", "10000"))
        self.stats = StoreStats()
        self._deferred = DeferredErrors()
        # The event loop collects operations and hands the writer whole batches over a C-level
        # SimpleQueue (no Python lock the writer could hold while waiting for the GIL): one batch
        # per loop in flight, the next one grows while it commits. ``None`` stops the writer.
        self._ops: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, _Side, list[_Op]] | None] = \
            queue.SimpleQueue()
        self._sides: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Side] = weakref.WeakKeyDictionary()
        self._closed = False
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._main, name=f"waystation-sqlite:{self.path.name}",
                                        daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        # Reads run on the caller's thread through a second connection: under WAL a reader sees
        # the last committed transaction without waiting for the writer (a point read is a few
        # microseconds, cheaper than a round trip through the writer thread).
        self._reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                       timeout=self.busy_timeout / 1000)
        self._reader.execute("PRAGMA query_only=1")
        self._rlock = threading.Lock()

    # -- the writer thread ----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=self.busy_timeout / 1000)
        conn.execute(f"PRAGMA busy_timeout={self.busy_timeout}")
        conn.execute("PRAGMA page_size=8192")  # only takes effect on a new file; states are ~0.5-3 KB
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(f"{self.path}: could not switch to WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA journal_size_limit=67108864")  # truncate the WAL back to 64 MB after checkpoints
        conn.executescript(_SCHEMA)
        return conn

    def _main(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while (item := self._ops.get()) is not None:
                loop, side, ops = item
                try:
                    done = self._run_batch(conn, ops)
                except BaseException as exc:  # never leave a waiter hanging
                    done = [(op[2], None, exc) for op in ops]
                    if not isinstance(exc, Exception):
                        raise
                finally:
                    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                        loop.call_soon_threadsafe(self._finish, loop, side, done)
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, ops: list[_Op]
                   ) -> list[_Done]:
        leads: dict[tuple[str, str], tuple[Any, ...]] = {}
        runs: list[tuple[Any, ...]] = []
        writers: list[asyncio.Future[Any] | None] = []
        reads: list[_Op] = []
        for op in ops:
            kind = op[0]
            if kind == "w":
                row = op[1]
                leads[(row[0], row[1])] = row
                writers.append(op[2])
            elif kind == "r":
                runs.append(op[1])
                writers.append(op[2])
            else:
                reads.append(op)
        done: list[_Done] = []
        if writers:
            err: BaseException | None = None
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    rows = list(leads.values())
                    for start in range(0, len(rows), _CHUNK):
                        chunk = rows[start:start + _CHUNK]
                        conn.execute(_upsert_sql(len(chunk)), [v for row in chunk for v in row])
                    if runs:
                        conn.executemany(_UPSERT_RUN, runs)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except Exception as exc:
                err = exc
            else:
                self.stats.transactions += 1
                self.stats.rows += len(leads) + len(runs)
            done.extend((f, None, err) for f in writers)
        for _, fn, fut in reads:
            try:
                done.append((fut, fn(conn), None))
            except Exception as exc:
                done.append((fut, None, exc))
        return done

    # -- the event-loop side --------------------------------------------------------------------

    @overload
    def _submit(self, kind: str, payload: Any) -> asyncio.Future[Any]: ...

    @overload
    def _submit(self, kind: str, payload: Any, wait: Literal[False]) -> None: ...

    def _submit(self, kind: str, payload: Any, wait: bool = True) -> asyncio.Future[Any] | None:
        if self._closed:
            raise RuntimeError(f"checkpoint store {self.path} is closed")
        loop = asyncio.get_running_loop()
        side = self._sides.get(loop)
        if side is None:
            side = self._sides[loop] = _Side()
        # a queued save has no future: its failure is kept for the next save() / close()
        fut: asyncio.Future[Any] | None = loop.create_future() if wait else None
        side.pending.append((kind, payload, fut))
        if not side.busy and not side.scheduled:
            side.scheduled = True  # hand off after every task ready in this loop turn had its say
            loop.call_soon(self._handoff, loop, side)
        return fut

    def _handoff(self, loop: asyncio.AbstractEventLoop, side: _Side) -> None:
        side.scheduled = False
        if side.busy or not side.pending:
            return
        batch, side.pending = side.pending, []
        if not self._thread.is_alive():  # the writer died (a BaseException): fail, never hang
            err = RuntimeError(f"checkpoint store {self.path}: its writer thread has stopped")
            _resolve([(op[2], None, err) for op in batch], self._deferred)
            return
        side.busy = True
        self._ops.put((loop, side, _serialize_queued(batch, self._deferred)))

    def _finish(self, loop: asyncio.AbstractEventLoop, side: _Side,
                done: list[_Done]) -> None:
        side.busy = False
        _resolve(done, self._deferred)
        if side.pending:  # what queued up while this batch committed is the next batch
            self._handoff(loop, side)

    def _read(self, sql: str, params: tuple[Any, ...], one: bool = False) -> Any:
        if self._closed:
            raise RuntimeError(f"checkpoint store {self.path} is closed")
        with self._rlock:
            cur = self._reader.execute(sql, params)
            return cur.fetchone() if one else cur.fetchall()

    async def save(self, run_id: str, lead_id: str, state: dict[str, Any]) -> None:
        """Save a lead's state; returns when its transaction has committed."""
        self._deferred.check(run_id, lead_id)
        await self._queue_save(run_id, lead_id, state)

    def save_nowait(self, run_id: str, lead_id: str, state: dict[str, Any]) -> None:
        """Queue a save without waiting for it (see :mod:`waystation.stores`, "Queued saves").

        The state is encoded when its batch goes to the writer (at the end of this event-loop
        turn, or when the running commit ends), and only if no later save of the same lead is in
        that batch: pass a fresh snapshot (``RunContext.to_state()``) and do not change it."""
        _check_ids(run_id, lead_id)
        self.stats.saves += 1
        self._submit("n", (run_id, lead_id, state, time.time()), wait=False)

    def _queue_save(self, run_id: str, lead_id: str, state: dict[str, Any]) -> asyncio.Future[Any]:
        _check_ids(run_id, lead_id)
        now = time.time()
        text = dumps({**state, "saved_at": now})
        self.stats.saves += 1
        return self._submit("w", (run_id, lead_id, state.get("status"), text, now))

    async def load(self, run_id: str, lead_id: str) -> dict[str, Any] | None:
        """The saved state of a lead, or ``None``."""
        _check_ids(run_id, lead_id)
        self.stats.loads += 1
        row = self._read("SELECT state FROM lead_state WHERE run_id = ? AND lead_id = ?", (run_id, lead_id),
                         one=True)
        return None if row is None else load_state(row[0], lead_id)

    async def iter_states(self, run_id: str) -> AsyncIterator[dict[str, Any]]:
        """Every lead state of ``run_id``, read in pages of 500 by lead id."""
        _check_ids(run_id)
        after = ""
        while True:
            rows: list[tuple[str, str]] = self._read(
                "SELECT lead_id, state FROM lead_state WHERE run_id = ? AND lead_id > ? ORDER BY lead_id LIMIT ?",
                (run_id, after, _PAGE))
            for lead_id, text in rows:
                yield load_state(text, lead_id)
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]
            await asyncio.sleep(0)  # let other tasks run between pages

    async def save_run(self, run_id: str, meta: dict[str, Any]) -> None:
        """Save a run's metadata; returns when committed."""
        _check_ids(run_id)
        now = time.time()
        await self._submit("r", (run_id, dumps(meta), now, now))

    async def load_run(self, run_id: str) -> dict[str, Any] | None:
        """A run's metadata, or ``None``."""
        _check_ids(run_id)
        row = self._read("SELECT meta FROM run_meta WHERE run_id = ?", (run_id,), one=True)
        return None if row is None else loads(row[0])

    async def list_runs(self) -> list[dict[str, Any]]:
        """Every run, oldest first, with ``run_id``, ``created_at`` and ``updated_at`` added."""
        rows: list[tuple[str, str, float, float]] = self._read(
            "SELECT run_id, meta, created_at, updated_at FROM run_meta ORDER BY created_at, run_id", ())
        return [{**loads(meta), "run_id": rid, "created_at": c, "updated_at": u} for rid, meta, c, u in rows]

    async def delete_run(self, run_id: str) -> None:
        """Forget a run: its metadata and every lead state."""
        _check_ids(run_id)

        def q(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM lead_state WHERE run_id = ?", (run_id,))
                conn.execute("DELETE FROM run_meta WHERE run_id = ?", (run_id,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._submit("q", q)

    async def forget(self, match: Callable[[dict[str, Any]], bool], *, dry_run: bool = False) -> tuple[int, int]:
        """Delete every lead state (of any run) for which ``match(state)`` is true, in one
        transaction; returns (states removed, runs they were in). See :mod:`waystation.forget`."""

        def q(conn: sqlite3.Connection) -> tuple[int, int]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                hits = [(run, lead) for run, lead, text in conn.execute("SELECT run_id, lead_id, state FROM lead_state")
                        if match(load_state(text, lead))]
                if not dry_run:
                    conn.executemany("DELETE FROM lead_state WHERE run_id = ? AND lead_id = ?", hits)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return len(hits), len({run for run, _ in hits})

        result: tuple[int, int] = await self._submit("q", q)
        return result

    async def vacuum(self) -> None:
        """Give the space of deleted runs back to the file system (``VACUUM`` + WAL truncate)."""

        def q(conn: sqlite3.Connection) -> None:
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        await self._submit("q", q)

    async def close(self) -> None:
        """Commit what is queued, stop the writer thread and close the file."""
        if self._closed:
            return
        if self._thread.is_alive():
            await self._submit("q", lambda conn: None)  # a barrier: everything queued before is done
        self._closed = True
        self._ops.put(None)
        await asyncio.to_thread(self._thread.join)
        with self._rlock:
            self._reader.close()
        self._deferred.check()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, synchronous={self.synchronous})"


def _serialize_queued(batch: list[_Op], deferred: DeferredErrors) -> list[_Op]:
    """Encode the queued (``save_nowait``) states of a batch that are the latest save of their
    lead in it; the others are superseded and dropped (nobody waits for them)."""
    if not any(op[0] == "n" for op in batch):
        return batch
    latest: dict[tuple[str, str], int] = {}
    for i, op in enumerate(batch):
        if op[0] in ("w", "n"):
            latest[(op[1][0], op[1][1])] = i
    out: list[_Op] = []
    for i, op in enumerate(batch):
        kind, payload, fut = op
        if kind != "n":
            out.append(op)
        elif latest[(payload[0], payload[1])] == i:
            run_id, lead_id, state, now = payload
            text = encode_queued(run_id, lead_id, state, now, deferred)
            if text is None:  # e.g. a secret: this lead's next save raises it
                continue
            out.append(("w", (run_id, lead_id, state.get("status"), text, now), fut))
    return out


class _Side:
    """One event loop's side of the store: its queued operations and whether a batch of its
    is with the writer."""

    __slots__ = ("busy", "pending", "scheduled")

    def __init__(self) -> None:
        self.pending: list[_Op] = []
        self.busy = False
        self.scheduled = False


def _resolve(items: list[_Done],
             deferred: DeferredErrors) -> None:
    for fut, result, err in items:
        if fut is None:  # a queued save: nobody waits, a failure is raised by the next save
            if err is not None and deferred.error is None:
                deferred.error = err
            continue
        if fut.done():  # the waiter was cancelled; the write happened anyway
            continue
        if err is not None:
            fut.set_exception(err)
        else:
            fut.set_result(result)
