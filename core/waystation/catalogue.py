"""Known stations and the distributions that ship them, for "not installed" hints.

A route may name a station whose plugin is simply not installed; the compiler and
``waystation stations NAME`` then say which package to install instead of guessing a look-alike
among the installed ones. Suggestions (:func:`suggest`) compare names without case and without
the ``Station`` suffix, over the installed names and this catalogue together.

Third-party plugins are welcome here: add ``"TheirStation": "their-distribution"``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

#: station name -> the distribution on the package index that provides it
KNOWN_STATIONS: dict[str, str] = {
    "IdentityResolutionStation": "waystation-identity",
    "TruePeopleSearchStation": "waystation-peoplesearch",
    "SkipTracingStation": "waystation-rapidapi",
    "RapidApiStation": "waystation-rapidapi",
    "TelnyxGatekeepStation": "waystation-telnyx",
    "DNCScrubStation": "waystation-dnc",
    "RealValidationDNCStation": "waystation-dnc",
    "BlacklistAllianceStation": "waystation-dnc",
    "DNCScrubApiStation": "waystation-dnc",
    "ReassignedNumbersStation": "waystation-dnc",
    "DialEligibilityStation": "waystation-dnc",
    "IncomeStation": "waystation-census",
    "DemographicsStation": "waystation-census",
    "DatabaseSaveStation": "waystation-sql",
}

#: Similarity (difflib ratio on the folded names) below which nothing is suggested.
CUTOFF = 0.72


@dataclass(frozen=True)
class Suggestion:
    """The closest known station to a name that was not found.

    ``installed``: it is installed (a typo); otherwise ``package`` is what to install.
    """

    name: str
    installed: bool
    package: str | None = None

    def hint(self, asked: str) -> str:
        """One sentence for an error message."""
        install = f"pip install {self.package}" if self.package else None
        if self.installed:
            return f"did you mean {self.name!r}?"
        if self.name == asked:
            return f"{self.name} is in {self.package}: {install}"
        return f"did you mean {self.name!r}? It is in {self.package}: {install}"


def _fold(name: str) -> str:
    low = name.lower().replace("_", "").replace("-", "").replace(" ", "")
    return low[: -len("station")] if low.endswith("station") and len(low) > len("station") else low


def suggest(name: str, installed: Iterable[str]) -> Suggestion | None:
    """The best suggestion for ``name``: an installed station first when it is as close, then a
    catalogued one with its package; ``None`` when nothing is close enough."""
    inst = list(installed)
    if name in KNOWN_STATIONS and name not in inst:
        return Suggestion(name, False, KNOWN_STATIONS[name])
    candidates: dict[str, Suggestion] = {}
    for n in inst:
        candidates[n] = Suggestion(n, True)
    for n, pkg in KNOWN_STATIONS.items():
        candidates.setdefault(n, Suggestion(n, False, pkg))
    key = _fold(name)
    best: tuple[float, int, str] | None = None
    for n, s in candidates.items():
        folded = _fold(n)
        ratio = 1.0 if folded == key else difflib.SequenceMatcher(None, key, folded).ratio()
        rank = (ratio, 1 if s.installed else 0, n)
        if ratio >= CUTOFF and (best is None or rank > best):
            best = rank
    return candidates[best[2]] if best else None
