"""Exports fail closed on stale evidence.

A verdict is true when it is made; what it rests on expires (registry data 31 days after the
file's date, a vendor's answer when the vendor or a setting says). Whoever writes a verdict out
later — the batch output (also of a resumed run or a re-export), a database save — calls
:func:`recheck` (re-evaluate: an expired ``yes`` becomes ``unknown``, an ended calling window
moves to the next one) or :func:`refusal` (refuse with a clear message) first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from waystation.dial import evidence as ev
from waystation.dial.policy import states_of, window_fields, zones_of
from waystation.dial.windows import next_window

VERDICT_FIELD = "dial_eligible"


@dataclass
class ExportCheck:
    """What :func:`recheck` found: the ``data`` to write, the ``expired`` checks (with their
    expiry times), whether anything ``changed``."""

    data: dict[str, Any]
    expired: dict[str, str] = field(default_factory=dict)
    changed: bool = False

    @property
    def stale(self) -> bool:
        """Whether the verdict rests on expired evidence."""
        return bool(self.expired)


def reasons_of(value: Any) -> list[str]:
    """A ``dial_reasons`` value (a list, or its JSON / comma-separated text) as a list."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return [p.strip() for p in value.split(",") if p.strip()]
        value = parsed if isinstance(parsed, list) else [parsed]
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def expired_checks(data: Mapping[str, Any], now: datetime | None = None) -> dict[str, str]:
    """The checks of the lead's evidence (about its current phone) that have expired at ``now``:
    check → when it expired. Calling windows are left out (they are worked out again)."""
    phone = ev.phone_key(data.get("phone"))
    out: dict[str, str] = {}
    for item in ev.expired_items(data.get(ev.EVIDENCE_FIELD), now):
        if item.phone and phone and item.phone != phone:
            continue
        out.setdefault(item.check, item.expires_at)
    return out


def recheck(data: Mapping[str, Any], now: datetime | None = None) -> ExportCheck:
    """Re-evaluate a lead's verdict at export time (nothing changes for a lead without a verdict).

    An expired check turns ``yes`` into ``unknown`` (reason ``expired:<check>``); ``no`` and
    ``unknown`` stay as they are (a verdict is never upgraded here). A calling window that has
    ended is replaced by the next one.
    """
    out = dict(data)
    verdict = out.get(VERDICT_FIELD)
    if verdict in (None, ""):
        return ExportCheck(out)
    when = (now or ev.utcnow()).astimezone(UTC)
    expired = expired_checks(out, when)
    check = ExportCheck(out, expired)
    if expired and verdict == "yes":
        out[VERDICT_FIELD] = "unknown"
        out["dial_reasons"] = [*reasons_of(out.get("dial_reasons")), *(f"expired:{c}" for c in expired)]
        check.changed = True
    end = out.get("dial_window_end_utc")
    if end:
        try:
            ended = ev.parse_time(str(end)) <= when
        except ValueError:
            ended = True
        if ended:
            zones, states = _window_inputs(out)
            out.update(window_fields(next_window(zones, states, when) if zones else None))
            check.changed = True
    return check


def _window_inputs(data: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    for item in ev.latest(ev.items(data.get(ev.EVIDENCE_FIELD)), "calling_window"):
        zones = [str(z) for z in item.detail.get("zones") or []]
        if zones:
            return zones, [str(s) for s in item.detail.get("states") or []]
    return zones_of(data), states_of(data)


def refusal(data: Mapping[str, Any], now: datetime | None = None) -> str | None:
    """Why a lead with a verdict must not be saved as it is (its evidence expired), or ``None``."""
    if data.get(VERDICT_FIELD) in (None, ""):
        return None
    expired = expired_checks(data, now)
    if not expired:
        return None
    listed = ", ".join(f"{c} (expired {t})" for c, t in sorted(expired.items()))
    return (f"refusing to save a dial verdict whose evidence has expired: {listed}; re-run the checks "
            "with fresh data (for the federal registry: download it and 'waystation dnc import' it)")


class ExportTally:
    """What a batch exported: verdicts and reasons counted after the export-time :func:`recheck`,
    and how many rows rested on expired evidence (``stale``). ``saved`` restores the counts a
    resumed run had recorded."""

    def __init__(self, saved: Mapping[str, Any] | None = None) -> None:
        saved = saved or {}
        self.verdicts: dict[str, int] = dict(saved.get("verdicts") or {})
        self.reasons: dict[str, int] = dict(saved.get("reasons") or {})
        self.stale = int(saved.get("stale") or 0)
        self.downgraded = int(saved.get("downgraded") or 0)

    def check(self, data: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
        """``data`` as it must be written (re-checked), counted."""
        if data.get(VERDICT_FIELD) in (None, ""):
            return dict(data)
        before = data.get(VERDICT_FIELD)
        checked = recheck(data, now)
        out = checked.data
        verdict = str(out.get(VERDICT_FIELD))
        self.verdicts[verdict] = self.verdicts.get(verdict, 0) + 1
        for r in reasons_of(out.get("dial_reasons")):
            self.reasons[r] = self.reasons.get(r, 0) + 1
        if checked.stale:
            self.stale += 1
            if before == "yes":
                self.downgraded += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        """For the run's metadata and report."""
        return {"verdicts": dict(sorted(self.verdicts.items())), "reasons": dict(sorted(self.reasons.items())),
                "stale": self.stale, "downgraded": self.downgraded}

    @property
    def empty(self) -> bool:
        """Whether no row had a verdict."""
        return not self.verdicts

    def refusal(self) -> str | None:
        """The message when some exported verdicts rest on expired evidence, else ``None``."""
        if not self.stale:
            return None
        return (f"{self.stale} exported dial verdict(s) rest on expired evidence ({self.downgraded} 'yes' "
                "written as 'unknown'): refresh the data (e.g. 'waystation dnc import' the current registry) "
                "and run again")
