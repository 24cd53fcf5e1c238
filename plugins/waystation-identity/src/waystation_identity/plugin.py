"""The waystation entry point of waystation-identity (light: no parsing library is imported here)."""

from __future__ import annotations

from waystation import Station, hookimpl

from waystation_identity.stations import IdentityResolutionStation

WAYSTATION_API = ">=1,<2"


@hookimpl
def register_stations() -> list[type[Station]]:
    """The stations of this plugin: ``IdentityResolutionStation``."""
    return [IdentityResolutionStation]
