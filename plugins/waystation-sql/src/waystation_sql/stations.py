"""DatabaseSaveStation: upsert each lead into a SQL table (light module; SQLAlchemy loads in open())."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict
from waystation import Outcome, PermanentError, RetryPolicy, Station, StationSettings, StepContext
from waystation.dial.export import refusal

if TYPE_CHECKING:
    from waystation_sql.db import LeadTable

DEFAULT_URL = "sqlite:///.waystation/leads.db"


class SQLSettings(StationSettings):
    """Settings of :class:`DatabaseSaveStation` (route ``settings:`` or ``WAYSTATION_SQL_*`` variables).

    ``url`` is a SQLAlchemy URL: ``sqlite:///relative/file.db`` (relative to the current
    directory), ``sqlite:////absolute/file.db``, ``postgresql+psycopg://user:pw@host:5432/db``
    (``postgresql://`` is read as psycopg 3). It is a secret: it may hold a password.
    """

    model_config = SettingsConfigDict(env_prefix="WAYSTATION_SQL_", extra="forbid", frozen=True,
                                      env_ignore_empty=True)

    url: SecretStr = Field(default=SecretStr(DEFAULT_URL), description="SQLAlchemy database URL.")
    table: str = Field(default="leads", min_length=1, max_length=63, description="Table name.")
    schema_name: str | None = Field(default=None, max_length=63,
                                    description="Database schema (PostgreSQL); created if missing.")
    include: list[str] | None = Field(default=None, description="Save only these fields (default: all).")
    exclude: list[str] = Field(default_factory=list, description="Never save these fields.")
    pool_size: int = Field(default=5, ge=1, le=100, description="Connections kept open (not SQLite).")
    max_columns: int = Field(default=200, ge=0, le=1500,
                             description="Most field columns the table may have (PostgreSQL's hard limit is "
                                         "1,600); fields beyond it are kept in the record column only.")
    max_new_columns_per_lead: int = Field(default=32, ge=0, le=1500,
                                          description="Most columns one lead may add; the rest of its new fields "
                                                      "are kept in the record column only.")

    @field_validator("url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        plain = v.get_secret_value()
        if "://" not in plain:
            raise ValueError("not a database URL (e.g. sqlite:///.waystation/leads.db)")
        if plain.startswith("postgresql://") or plain.startswith("postgres://"):
            plain = "postgresql+psycopg://" + plain.split("://", 1)[1]
        return SecretStr(plain)


class DatabaseSaveStation(Station):
    """Save the lead as it stands to a SQL table: one row per lead id, upserted.

    Columns follow the lead's fields (added to the table as they first appear); the full record
    is kept in the JSON column ``record`` (the dial verdict and its evidence land in the columns
    ``dial_eligible``, ``dial_reasons`` and ``dial_evidence``, JSON). Provides ``saved`` and
    ``saved_at`` (ISO UTC). Put it last in a route with ``after:`` naming the steps whose fields it
    must see. It refuses to save a dial verdict whose evidence has expired.
    """

    name = "DatabaseSaveStation"
    requires = ()
    provides = {"saved": bool, "saved_at": str}
    side_effects = True  # it writes rows: `waystation estimate` never runs it
    cost = 0.0
    timeout = 60.0
    retry = RetryPolicy(max_attempts=3, retry_on=("timeout", "connection", "transient"))
    in_doubt = "repay"
    Settings = SQLSettings

    def __init__(self, settings: StationSettings | None = None) -> None:
        super().__init__(settings)
        self._table: LeadTable | None = None
        self._connect = asyncio.Lock()

    @property
    def config(self) -> SQLSettings:
        """The settings, typed."""
        assert isinstance(self.settings, SQLSettings)
        return self.settings

    async def open(self) -> None:
        """Prepare the table object; the connection is made on the first save, inside the step's
        retries (so a database that is briefly down at start is retried like any other failure)."""
        from waystation_sql.db import LeadTable

        if self._table is None:
            self._table = LeadTable(self.config)

    async def _ensure_open(self) -> LeadTable:
        if self._table is None:
            await self.open()
        assert self._table is not None
        if self._table.engine is None:
            async with self._connect:
                if self._table.engine is None:
                    await asyncio.to_thread(self._table.open)
        return self._table

    async def close(self) -> None:
        """Dispose of the connection pool."""
        if self._table is not None:
            table, self._table = self._table, None
            await asyncio.to_thread(table.close)

    async def process(self, ctx: StepContext) -> Outcome:
        """Upsert the lead (``ctx.lead_id``) with every field it has so far.

        A lead with a dial verdict (``dial_eligible``) whose evidence has expired is refused with a
        message naming each expired check: a stale verdict is never saved (docs/compliance.md)."""
        refused = refusal(ctx.data)
        if refused is not None:
            raise PermanentError(refused)
        table = await self._ensure_open()
        saved_at = await asyncio.to_thread(table.save, ctx.lead_id, ctx.route, dict(ctx.data))
        return Outcome({"saved": True, "saved_at": saved_at})
