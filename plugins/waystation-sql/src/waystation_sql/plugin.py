"""The waystation plugin of waystation-sql (light imports only: SQLAlchemy loads in ``open()``)."""

from __future__ import annotations

from collections.abc import Iterable

from waystation import Station, hookimpl

from waystation_sql.stations import DatabaseSaveStation

WAYSTATION_API = ">=1,<2"


@hookimpl
def register_stations() -> Iterable[type[Station]]:
    """The DatabaseSaveStation."""
    return [DatabaseSaveStation]
