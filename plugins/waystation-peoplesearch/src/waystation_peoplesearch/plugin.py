"""The waystation entry point of waystation-peoplesearch (imports no HTTP client or parser)."""

from __future__ import annotations

from waystation import Station, hookimpl

WAYSTATION_API = ">=1,<2"


@hookimpl
def register_stations() -> list[type[Station]]:
    """Register :class:`~waystation_peoplesearch.station.TruePeopleSearchStation`."""
    from waystation_peoplesearch.station import TruePeopleSearchStation

    return [TruePeopleSearchStation]
