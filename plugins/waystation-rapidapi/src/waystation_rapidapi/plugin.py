"""The waystation plugin module of waystation-rapidapi (entry point ``waystation: rapidapi``).

Imports only light modules: httpx is imported when the station opens.
"""

from __future__ import annotations

from collections.abc import Iterable

from waystation import Station, hookimpl

from waystation_rapidapi.station import RapidApiStation, SkipTracingStation

WAYSTATION_API = ">=1,<2"


@hookimpl
def register_stations() -> Iterable[type[Station]]:
    """The stations of this plugin: ``SkipTracingStation`` and its seed alias ``RapidApiStation``."""
    return [SkipTracingStation, RapidApiStation]
