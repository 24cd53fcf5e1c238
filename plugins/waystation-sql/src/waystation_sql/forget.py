"""``waystation forget``: the person's rows out of the SQL save table (blocking; run in a thread)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from waystation.forget import Erasure

from waystation_sql.db import LeadTable
from waystation_sql.stations import SQLSettings

_PAGE = 1000


def _forget_table(table: LeadTable, request: Any) -> int:
    """Rows of ``table`` whose lead id or record is the person's, deleted (unless a dry run)."""
    engine = sa.create_engine(table.url)
    try:
        with engine.begin() as conn:
            if not sa.inspect(conn).has_table(table.settings.table, schema=table.schema):
                return 0
            t = sa.Table(table.settings.table, sa.MetaData(), autoload_with=conn, schema=table.schema)
            hits: list[str] = []
            rows = conn.execute(sa.select(t.c.lead_id, t.c.record).execution_options(yield_per=_PAGE))
            for lead_id, record in rows:
                if isinstance(record, str):
                    try:
                        record = json.loads(record)
                    except ValueError:
                        record = {}
                if request.matches(lead_id, record):
                    hits.append(lead_id)
            rows.close()
            if hits and not request.dry_run:
                for start in range(0, len(hits), _PAGE):
                    conn.execute(sa.delete(t).where(t.c.lead_id.in_(hits[start:start + _PAGE])))
            return len(hits)
    finally:
        engine.dispose()


def forget_rows(request: Any) -> list[Erasure]:
    """One :class:`Erasure` per SQL save table the route uses (``WAYSTATION_SQL_URL``'s without one)."""
    out: list[Erasure] = []
    seen: set[tuple[str, str | None, str]] = set()
    for values in request.station_settings("DatabaseSaveStation"):
        table = LeadTable(SQLSettings(**values))
        key = (str(table.url), table.schema, table.settings.table)
        if key in seen:
            continue
        seen.add(key)
        if table.dialect == "sqlite":
            db = table.url.database
            if not db or db == ":memory:" or not Path(db).is_file():
                out.append(Erasure(table.where, "rows", 0, "no such database file"))
                continue
        try:
            count = _forget_table(table, request)
        except sa_exc.SQLAlchemyError as exc:
            raise table._error(exc, "cannot erase from") from None
        out.append(Erasure(table.where, "rows", count))
    return out
