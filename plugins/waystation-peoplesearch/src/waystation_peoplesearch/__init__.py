"""waystation-peoplesearch: the TruePeopleSearch station for waystation (opt-in, polite, free)."""

from waystation_peoplesearch.station import PeopleSearchSettings, TruePeopleSearchStation, __version__

__all__ = ["PeopleSearchSettings", "TruePeopleSearchStation", "__version__"]
