"""The SQLite lookup cache (the default): tables ``lookup_cache*`` in one file, WAL mode.

By default the file is the checkpoint database; its own connection, used from a worker thread
under a lock (one short statement per lookup), never blocks the event loop. A write commits
before ``put`` returns.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from waystation.cache.entry import CacheEntry, CacheStats, Clock
from waystation.stores.sqlite import path_of

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lookup_cache (
    station TEXT NOT NULL, key TEXT NOT NULL, stored_at REAL NOT NULL, expires_at REAL NOT NULL,
    value TEXT NOT NULL, PRIMARY KEY (station, key));
CREATE INDEX IF NOT EXISTS lookup_cache_expiry ON lookup_cache (expires_at);
CREATE TABLE IF NOT EXISTS lookup_cache_subjects (
    token TEXT NOT NULL, station TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (token, station, key));
CREATE INDEX IF NOT EXISTS lookup_cache_subjects_entry ON lookup_cache_subjects (station, key);
CREATE TABLE IF NOT EXISTS lookup_cache_counters (
    station TEXT PRIMARY KEY, hits INTEGER NOT NULL DEFAULT 0, misses INTEGER NOT NULL DEFAULT 0,
    writes INTEGER NOT NULL DEFAULT 0);
"""


class SQLiteCache:
    """:class:`~waystation.cache.LookupCache` in a SQLite file (see the module docstring)."""

    def __init__(self, url: str, *, clock: Clock = time.time) -> None:
        self.url = url
        self.clock = clock
        self.path = path_of(url)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def work() -> T:
            with self._lock:
                return fn(self._db())

        return await asyncio.to_thread(work)

    @staticmethod
    def _count(db: sqlite3.Connection, station: str, column: str) -> None:
        db.execute(f"INSERT INTO lookup_cache_counters (station, {column}) VALUES (?, 1) "
                   f"ON CONFLICT (station) DO UPDATE SET {column} = {column} + 1", (station,))

    async def get(self, station: str, key: str) -> CacheEntry | None:
        now = self.clock()

        def fn(db: sqlite3.Connection) -> CacheEntry | None:
            row = db.execute("SELECT value, expires_at FROM lookup_cache WHERE station = ? AND key = ?",
                             (station, key)).fetchone()
            hit = row is not None and float(row[1]) > now
            self._count(db, station, "hits" if hit else "misses")
            return CacheEntry.from_json(station, json.loads(row[0])) if hit else None

        return await self._run(fn)

    async def put(self, key: str, entry: CacheEntry) -> None:
        value = json.dumps(entry.to_json(), default=str)

        def fn(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("INSERT OR REPLACE INTO lookup_cache VALUES (?, ?, ?, ?, ?)",
                           (entry.station, key, entry.stored_at, entry.expires_at, value))
                db.execute("DELETE FROM lookup_cache_subjects WHERE station = ? AND key = ?", (entry.station, key))
                db.executemany("INSERT OR IGNORE INTO lookup_cache_subjects VALUES (?, ?, ?)",
                               [(t, entry.station, key) for t in entry.subjects])
                self._count(db, entry.station, "writes")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        await self._run(fn)

    async def stats(self, station: str | None = None) -> list[CacheStats]:
        now = self.clock()

        def fn(db: sqlite3.Connection) -> list[CacheStats]:
            where, args = ("WHERE station = ?", (station,)) if station is not None else ("", ())
            out: dict[str, CacheStats] = {}
            for name, fresh, expired, oldest, newest in db.execute(
                    "SELECT station, SUM(expires_at > ?), SUM(expires_at <= ?), MIN(CASE WHEN expires_at > ? "
                    "THEN stored_at END), MAX(CASE WHEN expires_at > ? THEN stored_at END) FROM lookup_cache "
                    f"{where} GROUP BY station", (now, now, now, now, *args)):
                out[name] = CacheStats(station=name, entries=int(fresh or 0), expired=int(expired or 0),
                                       oldest_age=None if oldest is None else max(0.0, now - oldest),
                                       newest_age=None if newest is None else max(0.0, now - newest))
            for name, hits, misses, writes in db.execute(
                    f"SELECT station, hits, misses, writes FROM lookup_cache_counters {where}", args):
                st = out.setdefault(name, CacheStats(station=name))
                st.hits, st.misses, st.writes = int(hits), int(misses), int(writes)
            return [out[k] for k in sorted(out)]

        return await self._run(fn)

    async def _delete(self, where: str, args: tuple[Any, ...]) -> int:
        def fn(db: sqlite3.Connection) -> int:
            db.execute("BEGIN IMMEDIATE")
            try:
                pairs = db.execute(f"SELECT station, key FROM lookup_cache WHERE {where}", args).fetchall()
                db.executemany("DELETE FROM lookup_cache WHERE station = ? AND key = ?", pairs)
                db.executemany("DELETE FROM lookup_cache_subjects WHERE station = ? AND key = ?", pairs)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            n = len(pairs)
            return int(n)

        return await self._run(fn)

    async def prune(self, station: str | None = None) -> int:
        now = self.clock()
        if station is None:
            return await self._delete("expires_at <= ?", (now,))
        return await self._delete("expires_at <= ? AND station = ?", (now, station))

    async def clear(self, station: str | None = None) -> int:
        if station is None:
            n = await self._delete("1 = 1", ())
            await self._run(lambda db: db.execute("DELETE FROM lookup_cache_counters"))
            return n
        n = await self._delete("station = ?", (station,))
        await self._run(lambda db: db.execute("DELETE FROM lookup_cache_counters WHERE station = ?", (station,)))
        return n

    async def forget(self, subjects: Iterable[str], *, dry_run: bool = False) -> int:
        tokens = sorted(set(subjects))
        if not tokens:
            return 0
        marks = ",".join("?" * len(tokens))
        where = f"(station, key) IN (SELECT station, key FROM lookup_cache_subjects WHERE token IN ({marks}))"
        if dry_run:
            return await self._run(lambda db: int(db.execute(f"SELECT COUNT(*) FROM lookup_cache WHERE {where}",
                                                             tuple(tokens)).fetchone()[0]))
        return await self._delete(where, tuple(tokens))

    async def used(self) -> bool:
        if self._conn is None and not self.path.is_file():
            return False

        def fn() -> bool:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
            try:
                return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'lookup_cache'").fetchone() is not None
            finally:
                conn.close()

        return await asyncio.to_thread(fn)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(conn.close)
