"""Policies and verdicts: turn a lead's evidence into ``dial_eligible`` (yes / no / unknown) with reasons.

A verdict is only ever as good as its evidence, so the rules are deliberately one-sided:

- **no** when any valid (unexpired, about this phone) evidence says the number is listed (federal,
  state, internal, litigator, DMA) or was reassigned since the consent date;
- otherwise **unknown** when a check the policy requires is missing, expired, about another
  number, or inconclusive (area code not loaded, no data), when a wireless number has no consent
  date under ``wireless: consent-required``, or when no calling window can be worked out;
- **yes** only when every required check is present, fresh and clear.

Reason codes (also counted in the run report): ``listed:<check>``, ``reassigned``,
``missing:<check>``, ``expired:<check>``, ``not_loaded:<check>``, ``inconclusive:<check>``, ``no_data:reassigned``,
``line_type_unknown``, ``wireless_without_consent``, ``consent_date_invalid``, ``no_phone``,
``no_time_zone``, ``no_common_window``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from waystation.dial import evidence as ev
from waystation.dial.windows import RuleTable, Window, next_window

Eligible = Literal["yes", "no", "unknown"]
#: List checks: a ``listed`` result makes the verdict ``no``.
LIST_CHECKS = ("federal_dnc", "state_dnc", "internal_dnc", "litigator", "dma", "other_dnc")
#: The results that clear a required check (anything else is not a "yes").
CLEAR: dict[str, tuple[str, ...]] = {
    **{c: (ev.NOT_LISTED,) for c in LIST_CHECKS},
    "reassigned": (ev.REASSIGNED_NO,),
    "line_type": (ev.WIRELESS, ev.LANDLINE, ev.VOIP, ev.OTHER_LINE),
}
#: Line types that need prior express consent under ``wireless: consent-required``.
CONSENT_LINE_TYPES = frozenset({ev.WIRELESS})


class DialPolicy(BaseModel):
    """What a verdict requires. Build one with :func:`policy` from a named base and overrides.

    - ``require``: checks that must be present, fresh and clear for ``yes``;
    - ``wireless``: ``consent-required`` (a wireless number needs a valid ``consent_field``
      date, and the line type must be known) or ``ignore`` (manual dialing only);
    - ``consent_field``: the lead field holding the date of prior express consent;
    - ``window``: ``required`` (no time zone, no ``yes``) or ``ignore``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "tsr-2025"
    require: tuple[ev.Check, ...] = ("federal_dnc", "internal_dnc")
    wireless: Literal["consent-required", "ignore"] = "consent-required"
    consent_field: str = Field(default="consent_date", min_length=1)
    window: Literal["required", "ignore"] = "required"


#: The named policies a route can ask for.
POLICIES: dict[str, dict[str, Any]] = {
    # FTC TSR safe harbor (16 CFR 310.4(b)(3)): registry data at most 31 days old and an internal
    # do-not-call list; TCPA (47 CFR 64.1200): calling hours, consent for autodialed wireless calls.
    "tsr-2025": {"require": ("federal_dnc", "internal_dnc"), "wireless": "consent-required",
                 "window": "required"},
}


def policy(name: str = "tsr-2025", **overrides: Any) -> DialPolicy:
    """The named policy with ``overrides`` (``None`` values are ignored); ``also_require`` adds checks."""
    base = POLICIES.get(name)
    if base is None:
        raise ValueError(f"unknown dial policy {name!r} (known: {', '.join(sorted(POLICIES))})")
    values: dict[str, Any] = {"name": name, **base}
    extra = overrides.pop("also_require", None) or ()
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["require"] = tuple(dict.fromkeys([*values["require"], *extra]))
    return DialPolicy.model_validate(values)


@dataclass
class Verdict:
    """A verdict: ``eligible``, its ``reasons`` (empty for ``yes``), the next calling ``window``."""

    eligible: Eligible
    reasons: list[str]
    policy: str
    checked_at: datetime
    window: Window | None = None
    zones: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)

    def fields(self) -> dict[str, Any]:
        """The lead fields of the verdict (see ``docs/compliance.md``)."""
        out: dict[str, Any] = {"dial_eligible": self.eligible, "dial_reasons": list(self.reasons),
                               "dial_policy": self.policy, "dial_checked_at": ev.iso(self.checked_at)}
        out.update(window_fields(self.window))
        return out


def window_fields(window: Window | None) -> dict[str, Any]:
    """The ``dial_window_*`` fields of a window (all ``None`` without one)."""
    if window is None:
        return {k: None for k in WINDOW_FIELDS}
    return {
        "dial_window_start_utc": ev.iso(window.start),
        "dial_window_end_utc": ev.iso(window.end),
        "dial_window_start_local": window.start_local.isoformat(timespec="minutes"),
        "dial_window_end_local": window.end_local.isoformat(timespec="minutes"),
        "dial_window_zone": window.zone,
        "dial_window_rules": window.describe(),
        "dial_max_calls_24h": window.max_calls_24h,
    }


WINDOW_FIELDS = ("dial_window_start_utc", "dial_window_end_utc", "dial_window_start_local",
                 "dial_window_end_local", "dial_window_zone", "dial_window_rules", "dial_max_calls_24h")


def zones_of(data: Mapping[str, Any]) -> list[str]:
    """The candidate time zones of a lead: ``timezone``, ``phone_timezone``, ``phone_timezones``."""
    out: list[str] = []
    for key in ("timezone", "phone_timezone", "phone_timezones"):
        value = data.get(key)
        values = value if isinstance(value, list | tuple) else [value]
        for z in values:
            if isinstance(z, str) and z.strip() and z.strip() not in out:
                out.append(z.strip())
    return out


def states_of(data: Mapping[str, Any]) -> list[str]:
    """The candidate states of a lead: its address ``state`` and its phone's ``phone_state``."""
    out: list[str] = []
    for key in ("state", "phone_state"):
        value = data.get(key)
        if isinstance(value, str) and len(value.strip()) == 2 and value.strip().upper() not in out:
            out.append(value.strip().upper())
    return out


def consent_date(value: Any, now: datetime) -> date | None:
    """A consent date field as a date, or ``None`` when it is missing, unreadable or in the future."""
    if value is None or value == "":
        return None
    try:
        when = ev.parse_time(str(value))
    except ValueError:
        return None
    return when.date() if when <= now else None


def decide(data: Mapping[str, Any], pol: DialPolicy, now: datetime | None = None,
           rules: RuleTable | None = None) -> Verdict:
    """The verdict for a lead (its fields and its ``dial_evidence``) under ``pol`` at ``now``."""
    when = (now or ev.utcnow()).astimezone(UTC)
    no: list[str] = []
    unknown: list[str] = []
    phone = ev.phone_key(data.get("phone"))
    zones, states = zones_of(data), states_of(data)
    if not phone:
        return Verdict("unknown", ["no_phone"], pol.name, when, zones=zones, states=states)
    valid: list[ev.Evidence] = []
    expired: set[str] = set()
    for item in ev.items(data.get(ev.EVIDENCE_FIELD)):
        if item.phone and item.phone != phone:
            continue
        if item.expired(when):
            expired.add(item.check)
            continue
        valid.append(item)
    for item in valid:
        if item.check in LIST_CHECKS and item.result == ev.LISTED:
            no.append(f"listed:{item.check}")
        elif item.check == "reassigned" and item.result == ev.REASSIGNED_YES:
            no.append("reassigned")
    for check in pol.require:
        if check == "calling_window":
            continue
        found = ev.latest(valid, check)
        if not found:
            unknown.append(f"expired:{check}" if check in expired else f"missing:{check}")
            continue
        result = found[0].result
        if result in CLEAR.get(check, ()) or (check in LIST_CHECKS and result == ev.LISTED) or (
                check == "reassigned" and result == ev.REASSIGNED_YES):
            continue  # clear, or already a "no"
        if result == ev.NOT_LOADED:
            unknown.append(f"not_loaded:{check}")
        elif check == "reassigned" and result == ev.REASSIGNED_NO_DATA:
            unknown.append("no_data:reassigned")
        elif check == "line_type" and result == ev.UNKNOWN_LINE:
            unknown.append("line_type_unknown")
        else:
            unknown.append(f"inconclusive:{check}")
    if pol.wireless == "consent-required":
        line = ev.latest(valid, "line_type")
        kind = line[0].result if line else None
        if kind is None or kind == ev.UNKNOWN_LINE:
            if "line_type_unknown" not in unknown:
                unknown.append("line_type_unknown")
        elif kind in CONSENT_LINE_TYPES:
            raw = data.get(pol.consent_field)
            if raw in (None, ""):
                unknown.append("wireless_without_consent")
            elif consent_date(raw, when) is None:
                unknown.append("consent_date_invalid")
    window = next_window(zones, states, when, rules) if zones else None
    if pol.window == "required" and window is None:
        unknown.append("no_time_zone" if not zones else "no_common_window")
    if no:
        return Verdict("no", _unique(no), pol.name, when, window, zones, states)
    if unknown:
        return Verdict("unknown", _unique(unknown), pol.name, when, window, zones, states)
    return Verdict("yes", [], pol.name, when, window, zones, states)


def _unique(reasons: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(reasons))
