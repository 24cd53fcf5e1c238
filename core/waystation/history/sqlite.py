"""Run history in a SQLite file (by default the checkpoint database), stdlib :mod:`sqlite3`.

One short transaction per call, on a worker thread, so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar

from waystation.history._base import DocumentHistory
from waystation.stores.sqlite import path_of

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run_history (
    run_id TEXT NOT NULL, segment TEXT NOT NULL, route TEXT NOT NULL, started_at REAL NOT NULL,
    doc TEXT NOT NULL, PRIMARY KEY (run_id, segment));
CREATE INDEX IF NOT EXISTS run_history_route ON run_history (route, started_at);
CREATE TABLE IF NOT EXISTS run_estimates (
    id INTEGER PRIMARY KEY AUTOINCREMENT, route TEXT NOT NULL, input_key TEXT NOT NULL,
    created_at REAL NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS run_estimates_input ON run_estimates (route, input_key, created_at);
"""


class SQLiteHistory(DocumentHistory):
    """:class:`~waystation.history.HistoryStore` in a SQLite file."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = path_of(url)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def work() -> T:
            with self._lock:
                if self._conn is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.executescript(_SCHEMA)
                    self._conn = conn
                with self._conn:  # one transaction
                    return fn(self._conn)

        return await asyncio.to_thread(work)

    async def _put(self, run_id: str, segment: str, route: str, started_at: float, doc: str) -> None:
        await self._run(lambda db: db.execute("INSERT OR REPLACE INTO run_history VALUES (?, ?, ?, ?, ?)",
                                              (run_id, segment, route, started_at, doc)))

    async def _docs(self, route: str | None, run_id: str | None) -> list[str]:
        sql, args = "SELECT doc FROM run_history", ()  # type: tuple[str, tuple[str, ...]]
        if route is not None:
            sql, args = sql + " WHERE route = ?", (route,)
        elif run_id is not None:
            sql, args = sql + " WHERE run_id = ?", (run_id,)
        return await self._run(lambda db: [r[0] for r in db.execute(sql + " ORDER BY started_at DESC", args)])

    async def _drop(self, run_id: str) -> int:
        return await self._run(lambda db: int(db.execute("DELETE FROM run_history WHERE run_id = ?",
                                                         (run_id,)).rowcount))

    async def _put_estimate(self, route: str, input_key: str, at: float, doc: str) -> None:
        await self._run(lambda db: db.execute(
            "INSERT INTO run_estimates (route, input_key, created_at, doc) VALUES (?, ?, ?, ?)",
            (route, input_key, at, doc)))

    async def _estimate(self, route: str, input_key: str, before: float | None) -> str | None:
        def fn(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT doc FROM run_estimates WHERE route = ? AND input_key = ? AND created_at <= ? "
                             "ORDER BY created_at DESC, id DESC LIMIT 1",
                             (route, input_key, before if before is not None else float("inf"))).fetchone()
            return str(row[0]) if row else None

        return await self._run(fn)

    async def close(self) -> None:
        """Close the connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(conn.close)
