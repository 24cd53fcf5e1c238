"""The catalogue of known stations names every station the shipped plugins register, with the
distribution that ships it, so that a route naming one that is not installed says what to install."""

from __future__ import annotations

from waystation import PluginHost
from waystation.catalogue import KNOWN_STATIONS


def test_every_shipped_station_is_in_the_catalogue_with_its_package() -> None:
    host = PluginHost.discover()
    shipped = {name: info.plugin for name, info in host.stations.items() if info.plugin.startswith("waystation-")}
    assert len(shipped) >= 10
    for name, dist in shipped.items():
        assert KNOWN_STATIONS.get(name) == dist, (name, dist)
