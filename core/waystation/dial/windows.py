"""Calling windows: when may this phone be called next, in UTC and in the called person's local time.

The rules are data (``state_rules.json`` next to this module, each entry with its source): the
federal hours apply everywhere, a state's stricter hours apply when the lead's state or the
phone's area-code state is that state. When several time zones are possible (a phone whose area
code spans zones, a state that spans zones), the window is the *intersection*: only the times
that are permitted in every candidate zone. Times are worked out with the standard library's
:mod:`zoneinfo`, so daylight-saving changes and zones on either side of the date line are exact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Rule", "RuleTable", "Window", "load_rules", "next_window"]


@dataclass(frozen=True)
class Rule:
    """The permitted calling hours of one jurisdiction (``federal`` or a 2-letter state)."""

    name: str
    start: time
    end: time
    source: str
    max_calls_24h: int | None = None
    zones: tuple[str, ...] = ()

    def describe(self) -> str:
        """``FL 08:00-20:00, at most 3 calls per 24 h``."""
        text = f"{self.name} {self.start:%H:%M}-{self.end:%H:%M}"
        return text + (f", at most {self.max_calls_24h} calls per 24 h" if self.max_calls_24h else "")


@dataclass(frozen=True)
class RuleTable:
    """The federal rule and the state rules."""

    federal: Rule
    states: Mapping[str, Rule] = field(default_factory=dict)

    def applicable(self, states: Iterable[str]) -> list[Rule]:
        """The federal rule and the rules of ``states`` that have one (sorted, no duplicates)."""
        out = [self.federal]
        for s in sorted({str(s).strip().upper() for s in states if s}):
            rule = self.states.get(s)
            if rule is not None:
                out.append(rule)
        return out


def _hhmm(text: str) -> time:
    hh, mm = str(text).split(":")
    return time(int(hh), int(mm))


def _rule(name: str, raw: Mapping[str, Any]) -> Rule:
    start, end = _hhmm(raw["start"]), _hhmm(raw["end"])
    if not start < end:
        raise ValueError(f"calling-hour rule {name}: start {raw['start']} is not before end {raw['end']}")
    if not str(raw.get("source") or "").strip():
        raise ValueError(f"calling-hour rule {name} names no source")
    calls = raw.get("max_calls_24h")
    return Rule(name, start, end, str(raw["source"]), int(calls) if calls is not None else None,
                tuple(raw.get("zones") or ()))


def parse_rules(data: Mapping[str, Any]) -> RuleTable:
    """A :class:`RuleTable` from the JSON shape of ``state_rules.json``."""
    federal = _rule("federal", data["federal"])
    states = {str(k).upper(): _rule(str(k).upper(), v) for k, v in (data.get("states") or {}).items()}
    return RuleTable(federal, states)


@cache
def _shipped() -> RuleTable:
    text = resources.files("waystation.dial").joinpath("state_rules.json").read_text(encoding="utf-8")
    return parse_rules(json.loads(text))


def load_rules(path: str | Path | None = None) -> RuleTable:
    """The shipped rule table, or the one in ``path`` (same JSON shape)."""
    if path is None:
        return _shipped()
    return parse_rules(json.loads(Path(path).read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Window:
    """The next permitted calling window: ``start``/``end`` in UTC, ``zone`` the local zone shown,
    ``zones`` every zone it had to fit, ``rules`` the rules applied."""

    start: datetime
    end: datetime
    zone: str
    zones: tuple[str, ...]
    rules: tuple[Rule, ...]

    @property
    def start_local(self) -> datetime:
        """``start`` in ``zone``."""
        return self.start.astimezone(ZoneInfo(self.zone))

    @property
    def end_local(self) -> datetime:
        """``end`` in ``zone``."""
        return self.end.astimezone(ZoneInfo(self.zone))

    @property
    def max_calls_24h(self) -> int | None:
        """The smallest call limit of the rules applied, if any."""
        limits = [r.max_calls_24h for r in self.rules if r.max_calls_24h]
        return min(limits) if limits else None

    def open_at(self, when: datetime) -> bool:
        """Whether ``when`` falls inside the window."""
        return self.start <= when < self.end

    def describe(self) -> str:
        """The rules, for people: ``federal 08:00-21:00; FL 08:00-20:00, at most 3 calls per 24 h``."""
        return "; ".join(r.describe() for r in self.rules)


def valid_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone this machine knows."""
    try:
        ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _local_intervals(zone: ZoneInfo, days: Iterable[date], start: time, end: time) -> list[tuple[datetime, datetime]]:
    out = []
    for d in days:
        a = datetime.combine(d, start, zone).astimezone(UTC)
        b = datetime.combine(d, end, zone).astimezone(UTC)
        if a < b:
            out.append((a, b))
    return out


def _intersect(xs: Sequence[tuple[datetime, datetime]], ys: Sequence[tuple[datetime, datetime]]
               ) -> list[tuple[datetime, datetime]]:
    out = []
    i = j = 0
    while i < len(xs) and j < len(ys):
        a = max(xs[i][0], ys[j][0])
        b = min(xs[i][1], ys[j][1])
        if a < b:
            out.append((a, b))
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return out


def next_window(zones: Sequence[str], states: Iterable[str] = (), now: datetime | None = None,
                rules: RuleTable | None = None, *, horizon_days: int = 8) -> Window | None:
    """The next window (from ``now`` on; the current one if it is open) in which a call is
    permitted in every zone of ``zones`` (plus the zones the applicable state rules list) under
    the federal rule and the rules of ``states``. ``None`` when no zone is known or the zones
    share no permitted time within ``horizon_days``.
    """
    table = rules or load_rules()
    when = (now or datetime.now(UTC)).astimezone(UTC)
    applied = table.applicable(states)
    start = max(r.start for r in applied)
    end = min(r.end for r in applied)
    names: list[str] = []
    for z in [*zones, *(z for r in applied for z in r.zones)]:
        if z and z not in names and valid_zone(z):
            names.append(z)
    if not names or not start < end:
        return None
    common: list[tuple[datetime, datetime]] | None = None
    for name in names:
        tz = ZoneInfo(name)
        today = when.astimezone(tz).date()
        days = [today + timedelta(days=k) for k in range(-1, horizon_days + 1)]
        spans = _local_intervals(tz, days, start, end)
        common = spans if common is None else _intersect(common, spans)
    for a, b in common or []:
        if b > when:
            return Window(max(a, when), b, names[0], tuple(names), tuple(applied))
    return None
