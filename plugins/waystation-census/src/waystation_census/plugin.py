"""The waystation entry point of waystation-census (light: no pandas, no httpx here)."""

from __future__ import annotations

from waystation import Station, hookimpl

from waystation_census.stations import DemographicsStation, IncomeStation

WAYSTATION_API = ">=1,<2"


@hookimpl
def register_stations() -> list[type[Station]]:
    """The stations of this plugin: ``IncomeStation`` and ``DemographicsStation``."""
    return [IncomeStation, DemographicsStation]
