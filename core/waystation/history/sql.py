"""Run history in PostgreSQL through SQLAlchemy 2 (``pip install 'waystation[postgres]'``).

URL: ``postgresql+psycopg://user:password@host:5432/db`` (``postgresql://`` is read as psycopg 3),
optionally ``?schema=NAME`` to keep the tables in a schema of their own (created if missing).
The SQLAlchemy engine is synchronous and used from a worker thread: history is written once per
run (and every few seconds per worker), so a pool of one or two connections is plenty.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from waystation.history._base import DocumentHistory
from waystation.stores import redact_url

T = TypeVar("T")


class SQLHistory(DocumentHistory):
    """:class:`~waystation.history.HistoryStore` in PostgreSQL (SQLAlchemy Core)."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa  # the `postgres` extra (the CLI names it when it is missing)

        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        self.schema = dict(query).get("schema") or None
        rest = urlencode([(k, v) for k, v in query if k != "schema"])
        scheme = "postgresql+psycopg" if parts.scheme in ("postgres", "postgresql") else parts.scheme
        self.url = redact_url(url)
        self._engine = sa.create_engine(parts._replace(scheme=scheme, query=rest).geturl(), pool_size=2,
                                        max_overflow=2, pool_pre_ping=True)
        md = sa.MetaData(schema=self.schema)
        self._runs = sa.Table(
            "run_history", md,
            sa.Column("run_id", sa.Text, primary_key=True), sa.Column("segment", sa.Text, primary_key=True),
            sa.Column("route", sa.Text, nullable=False, index=True), sa.Column("started_at", sa.Float, nullable=False),
            sa.Column("doc", sa.Text, nullable=False))
        self._estimates = sa.Table(
            "run_estimates", md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("route", sa.Text, nullable=False), sa.Column("input_key", sa.Text, nullable=False, index=True),
            sa.Column("created_at", sa.Float, nullable=False), sa.Column("doc", sa.Text, nullable=False))
        self._md = md
        self._ready = False

    async def _run(self, fn: Callable[[Any], T]) -> T:
        def work() -> T:
            import sqlalchemy as sa

            if not self._ready:
                with self._engine.begin() as conn:
                    # workers starting together would race on CREATE ... IF NOT EXISTS: one at a time
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(8215021)"))
                    if self.schema:
                        conn.execute(sa.schema.CreateSchema(self.schema, if_not_exists=True))
                    self._md.create_all(conn, checkfirst=True)
                self._ready = True
            with self._engine.begin() as conn:
                return fn(conn)

        return await asyncio.to_thread(work)

    async def _put(self, run_id: str, segment: str, route: str, started_at: float, doc: str) -> None:
        from sqlalchemy.dialects.postgresql import insert

        stmt = insert(self._runs).values(run_id=run_id, segment=segment, route=route, started_at=started_at, doc=doc)
        stmt = stmt.on_conflict_do_update(index_elements=["run_id", "segment"],
                                          set_={"route": route, "started_at": started_at, "doc": doc})
        await self._run(lambda conn: conn.execute(stmt))

    async def _docs(self, route: str | None, run_id: str | None) -> list[str]:
        import sqlalchemy as sa

        t = self._runs
        q = sa.select(t.c.doc).order_by(t.c.started_at.desc())
        if route is not None:
            q = q.where(t.c.route == route)
        elif run_id is not None:
            q = q.where(t.c.run_id == run_id)
        return await self._run(lambda conn: [str(r[0]) for r in conn.execute(q)])

    async def _drop(self, run_id: str) -> int:
        import sqlalchemy as sa

        stmt = sa.delete(self._runs).where(self._runs.c.run_id == run_id)
        return await self._run(lambda conn: int(conn.execute(stmt).rowcount))

    async def _put_estimate(self, route: str, input_key: str, at: float, doc: str) -> None:
        import sqlalchemy as sa

        stmt = sa.insert(self._estimates).values(route=route, input_key=input_key, created_at=at, doc=doc)
        await self._run(lambda conn: conn.execute(stmt))

    async def _estimate(self, route: str, input_key: str, before: float | None) -> str | None:
        import sqlalchemy as sa

        t = self._estimates
        q = sa.select(t.c.doc).where(t.c.route == route, t.c.input_key == input_key)
        if before is not None:
            q = q.where(t.c.created_at <= before)
        q = q.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(1)

        def fn(conn: Any) -> str | None:
            row = conn.execute(q).first()
            return str(row[0]) if row else None

        return await self._run(fn)

    async def close(self) -> None:
        """Dispose of the connection pool."""
        await asyncio.to_thread(self._engine.dispose)
