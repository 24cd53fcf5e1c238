"""The waystation plugin of waystation-sql (light imports only: SQLAlchemy loads in ``open()``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from waystation import Station, hookimpl

from waystation_sql.stations import DatabaseSaveStation

WAYSTATION_API = ">=1,<2"


@hookimpl
def register_stations() -> Iterable[type[Station]]:
    """The DatabaseSaveStation."""
    return [DatabaseSaveStation]


@hookimpl
async def forget_person(request: Any) -> Any:
    """Delete the person's rows from every SQL save table the route uses (or ``WAYSTATION_SQL_URL``'s)."""
    import asyncio

    from waystation_sql.forget import forget_rows

    return await asyncio.to_thread(forget_rows, request)
