"""The waystation plugin module of waystation-telnyx (entry point ``waystation: telnyx``).

Registers :class:`~waystation_telnyx.station.TelnyxGatekeepStation` and implements the gate as a
``decide_stop`` hook. Imports only light modules (httpx is imported when the station opens).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from waystation import Outcome, Station, Stop, hookimpl

from waystation_telnyx.station import TelnyxGatekeepStation, TelnyxSettings, gate_decision

if TYPE_CHECKING:
    from waystation import PlannedStep

WAYSTATION_API = ">=1,<2"


@hookimpl
def register_stations() -> Iterable[type[Station]]:
    """The stations of this plugin."""
    return [TelnyxGatekeepStation]


@hookimpl
def decide_stop(step: PlannedStep, outcome: Outcome) -> tuple[Stop, str] | None:
    """Gate the route after a Telnyx lookup: rejected line types and invalid numbers stop it.

    Acts only on steps whose station is a :class:`TelnyxGatekeepStation`; reads that step's
    ``reject_line_types`` and ``on_invalid`` settings (see :func:`gate_decision`).
    """
    station = step.station
    if station is None or not issubclass(station, TelnyxGatekeepStation):
        return None
    settings = step.settings if isinstance(step.settings, TelnyxSettings) else TelnyxSettings()
    return gate_decision(settings, outcome)
