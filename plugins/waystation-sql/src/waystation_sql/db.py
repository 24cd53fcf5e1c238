"""The lead table: a SQLAlchemy 2 table whose columns follow the fields it is given.

Blocking code, run in a worker thread by the station. Every statement is built with SQLAlchemy
constructs (bound parameters, quoted identifiers); columns are added with Alembic's operations.

Fixed columns: ``lead_id`` (primary key), ``route``, ``record`` (the whole lead as JSON; JSONB on
PostgreSQL), ``first_saved_at`` and ``saved_at``. Every other field gets a column named after it
(lower case, characters other than ``a-z0-9_`` replaced by ``_``; a name that clashes with a fixed
column or a database system column (``xmin``, ``ctid``, ``oid``, ``rowid``...), or starts with a
digit, gets the prefix ``f_``), typed from the first value seen: boolean, big integer, double,
JSON (lists and mappings) or text. A later value that does not fit its column's type is stored as
NULL in that column (it stays in ``record``).

The columns a lead file can add are capped (input decides the schema, so it must not be able to
exhaust it: PostgreSQL refuses a 1,601st column for good): at most ``max_columns`` field columns
per table and ``max_new_columns_per_lead`` new ones per lead. A field beyond either cap gets no
column; its value is kept in ``record`` (the overflow), and the first time it is met it is logged.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.types import TypeEngine
from waystation.errors import PermanentError, TransientError
from waystation.limits import RESERVED_COLUMNS

if TYPE_CHECKING:
    from waystation_sql.stations import SQLSettings

log = logging.getLogger("waystation.sql")

Category = Literal["bool", "int", "float", "json", "text"]
FIXED = ("lead_id", "route", "record", "first_saved_at", "saved_at")
_UNSAFE = re.compile(r"[^a-z0-9_]+")
_INT64 = (-(2**63), 2**63 - 1)


def column_name(field: str) -> str | None:
    """The column a field is stored in, or ``None`` when the name has nothing usable."""
    name = _UNSAFE.sub("_", field.strip().lower()).strip("_")
    if not name:
        return None
    if name[0].isdigit() or name in FIXED or name in RESERVED_COLUMNS:
        name = "f_" + name
    return name[:63]


def category_of(value: Any) -> Category:
    """The column type a first value asks for."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if _INT64[0] <= value <= _INT64[1] else "text"
    if isinstance(value, float):
        return "float"
    if isinstance(value, dict | list | tuple):
        return "json"
    return "text"


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def convert(value: Any, category: Category) -> Any:
    """``value`` as stored in a column of ``category`` (``None`` when it does not fit)."""
    if category == "json":
        return _json_safe(value)
    if category == "bool":
        return value if isinstance(value, bool) else None
    if category == "int":
        ok = isinstance(value, int) and not isinstance(value, bool) and _INT64[0] <= value <= _INT64[1]
        return value if ok else None
    if category == "float":
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if isinstance(value, str | int | float | bool):
        return str(value)
    return json.dumps(_json_safe(value), ensure_ascii=False)


def _category_of_type(tp: TypeEngine[Any]) -> Category:
    if isinstance(tp, sa.Boolean):
        return "bool"
    if isinstance(tp, sa.Integer):
        return "int"
    if isinstance(tp, sa.Float | sa.Numeric):
        return "float"
    if isinstance(tp, sa.JSON):
        return "json"
    return "text"


class LeadTable:
    """One table of saved leads behind one SQLAlchemy engine (thread-safe)."""

    def __init__(self, settings: SQLSettings) -> None:
        self.settings = settings
        self.url = make_url(settings.url.get_secret_value())
        self.schema = settings.schema_name
        self.engine: Engine | None = None
        self.table: sa.Table | None = None
        self.columns: dict[str, Category] = {}
        self._ddl = threading.Lock()
        self._write = threading.Lock()
        #: fields that got no column because a cap was reached (kept in ``record``; first 1,000)
        self.overflow: set[str] = set()

    @property
    def where(self) -> str:
        """The database and table for messages: never the URL itself (it is a secret, and may hold a
        password)."""
        name = f"{self.schema}.{self.settings.table}" if self.schema else self.settings.table
        u = self.url
        if self.dialect == "sqlite":
            return f"SQLite file {u.database or ':memory:'} table {name}"
        port = f":{u.port}" if u.port else ""
        user = f" as {u.username}" if u.username else ""
        return f"{u.get_backend_name()} database {u.database} at {u.host}{port}{user}, table {name}"

    @property
    def dialect(self) -> str:
        """The dialect name (``sqlite``, ``postgresql``, ...)."""
        return self.url.get_backend_name()

    def _type(self, category: Category) -> TypeEngine[Any]:
        if category == "json":
            if self.dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import JSONB
                return JSONB()
            return sa.JSON()
        return {"bool": sa.Boolean(), "int": sa.BigInteger(), "float": sa.Double(),
                "text": sa.Text()}[category]  # type: ignore[return-value]

    # -- lifecycle ----------------------------------------------------------------------------

    def open(self) -> None:
        """Connect, create the schema and table if missing, and read the table's columns."""
        engine: Engine | None = None
        try:
            if self.dialect == "sqlite":
                db = self.url.database
                if db and db != ":memory:" and not db.startswith("file:"):
                    Path(db).parent.mkdir(parents=True, exist_ok=True)
                engine = sa.create_engine(self.url, connect_args={"timeout": 60})

                @sa.event.listens_for(engine, "connect")
                def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                    cur = dbapi_conn.cursor()
                    cur.execute("PRAGMA journal_mode=WAL")
                    cur.execute("PRAGMA synchronous=NORMAL")
                    cur.close()
            else:
                engine = sa.create_engine(self.url, pool_size=self.settings.pool_size, pool_pre_ping=True)
            with self._ddl:
                with engine.begin() as conn:
                    if self.schema and self.dialect != "sqlite":
                        conn.execute(sa.schema.CreateSchema(self.schema, if_not_exists=True))
                    base = sa.Table(
                        self.settings.table, sa.MetaData(), *self._fixed_columns(), schema=self.schema)
                    base.create(conn, checkfirst=True)
                self.engine = engine
                self._reflect()
        except sa_exc.SQLAlchemyError as exc:
            self.engine = None
            if engine is not None:
                engine.dispose()
            raise self._error(exc, "cannot open") from None
        except ModuleNotFoundError as exc:
            raise PermanentError(f"cannot open {self.where}: the database driver is not installed "
                                 f"({exc.name}); for PostgreSQL: pip install 'waystation-sql[postgres]'") from None

    def close(self) -> None:
        """Dispose of the engine's pool."""
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    def _fixed_columns(self) -> list[sa.Column[Any]]:
        return [
            sa.Column("lead_id", sa.String(255), primary_key=True),
            sa.Column("route", sa.Text()),
            sa.Column("record", self._type("json"), nullable=False),
            sa.Column("first_saved_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        ]

    def _reflect(self) -> None:
        assert self.engine is not None
        with self.engine.connect() as conn:
            cols = sa.inspect(conn).get_columns(self.settings.table, schema=self.schema)
        self.columns = {c["name"]: _category_of_type(c["type"]) for c in cols if c["name"] not in FIXED}
        extra = [sa.Column(name, self._type(cat)) for name, cat in self.columns.items()]
        self.table = sa.Table(self.settings.table, sa.MetaData(), *self._fixed_columns(), *extra,
                              schema=self.schema)

    def _add_columns(self, wanted: Mapping[str, Category]) -> None:
        """Add the columns ``wanted`` that are missing, as far as ``max_columns`` allows (the table
        is reflected first: another process may have added some)."""
        from alembic.migration import MigrationContext
        from alembic.operations import Operations

        assert self.engine is not None
        with self._ddl:
            self._reflect()
            room = max(0, self.settings.max_columns - len(self.columns))
            missing = dict(list({k: v for k, v in wanted.items() if k not in self.columns}.items())[:room])
            for name, cat in missing.items():
                try:
                    with self.engine.begin() as conn:
                        ops = Operations(MigrationContext.configure(conn))
                        ops.add_column(self.settings.table, sa.Column(name, self._type(cat)), schema=self.schema,
                                       if_not_exists=True if self.dialect == "postgresql" else None)
                except sa_exc.OperationalError as exc:
                    # another process added it first (SQLite has no ADD COLUMN IF NOT EXISTS)
                    if "duplicate column" not in str(exc.orig).lower():
                        raise
            if missing:
                log.info("added columns to %s: %s", self.where, ", ".join(missing))
                self._reflect()

    # -- saving -------------------------------------------------------------------------------

    def fields_to_save(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The lead's fields after ``include`` / ``exclude``."""
        include = self.settings.include
        exclude = set(self.settings.exclude)
        return {k: v for k, v in data.items()
                if (include is None or k in include) and k not in exclude}

    def save(self, lead_id: str, route: str, data: Mapping[str, Any]) -> str:
        """Insert or update the lead's row; returns the ISO time it was saved at."""
        try:
            if self.dialect == "sqlite":
                with self._write:
                    return self._save(lead_id, route, data)
            return self._save(lead_id, route, data)
        except sa_exc.SQLAlchemyError as exc:
            raise self._error(exc, f"cannot save lead {lead_id} to") from None

    def _save(self, lead_id: str, route: str, data: Mapping[str, Any]) -> str:
        assert self.engine is not None
        fields = self.fields_to_save(data)
        row: dict[str, Any] = {}
        new: dict[str, Category] = {}
        room = min(self.settings.max_new_columns_per_lead, max(0, self.settings.max_columns - len(self.columns)))
        overflow: list[str] = []
        for key, value in fields.items():
            if value is None or value == "":
                continue
            col = column_name(str(key))
            if col is None or col in row:
                continue
            cat = self.columns.get(col) or new.get(col)
            if cat is None:
                if len(new) >= room:
                    overflow.append(str(key))
                    continue
                cat = new[col] = category_of(value)
            row[col] = convert(value, cat)
        if new:
            self._add_columns(new)
            for col in [c for c in new if c not in self.columns]:  # the table filled up meanwhile
                del row[col]
                overflow.append(col)
        if overflow:
            self._note_overflow(overflow)
        table = self.table
        assert table is not None
        now = datetime.now(UTC)
        values = {"lead_id": lead_id, "route": route, "record": _json_safe(dict(fields)),
                  "first_saved_at": now, "saved_at": now, **row}
        keep = ("lead_id", "first_saved_at")
        with self.engine.begin() as conn:
            if self.dialect in ("sqlite", "postgresql"):
                if self.dialect == "sqlite":
                    from sqlalchemy.dialects.sqlite import insert
                else:
                    from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
                stmt = insert(table).values(values)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[table.c.lead_id],
                    set_={k: stmt.excluded[k] for k in values if k not in keep})
                conn.execute(stmt)
            else:
                update = {k: v for k, v in values.items() if k not in keep}
                done = conn.execute(sa.update(table).where(table.c.lead_id == lead_id).values(update))
                if not done.rowcount:
                    conn.execute(sa.insert(table).values(values))
        return now.isoformat(timespec="seconds")

    def _note_overflow(self, names: list[str]) -> None:
        first = [n for n in names if n not in self.overflow]
        if first and len(self.overflow) < 1000:
            self.overflow.update(first)
            log.warning("%s: no column for %d field(s) (max_columns=%d, max_new_columns_per_lead=%d); their "
                        "values are kept in the record column: %s", self.where, len(first),
                        self.settings.max_columns, self.settings.max_new_columns_per_lead,
                        ", ".join(n[:63] for n in first[:20]) + (" ..." if len(first) > 20 else ""))

    def _error(self, exc: sa_exc.SQLAlchemyError, doing: str) -> Exception:
        orig = getattr(exc, "orig", None) or exc
        first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        message = f"{doing} {self.where}: {type(orig).__name__}: {first}"
        transient = isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.DisconnectionError
                               | sa_exc.TimeoutError) or getattr(exc, "connection_invalidated", False)
        if transient:
            return TransientError(message)
        return PermanentError(message)
