"""Evidence: what one check found about one phone number, from which source, valid until when.

A lead carries its evidence in the field :data:`EVIDENCE_FIELD` (``dial_evidence``): a list of
JSON-ready dicts, one per check a station made (the shape of :class:`Evidence`). It travels like
any other field: into checkpoints, the output file and the SQL save. A station that checks a phone
*appends* to the list (it declares ``dial_evidence`` both as ``optional`` and in ``provides``, so
the steps that add evidence run one after the other and none overwrites another's), replacing an
earlier item of the same check made by the same station.

This module is light (pydantic and the standard library only) so plugins can import it at load time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: The lead field that carries the evidence list.
EVIDENCE_FIELD = "dial_evidence"

Check = Literal["federal_dnc", "state_dnc", "internal_dnc", "litigator", "dma", "other_dnc", "reassigned",
                "line_type", "calling_window"]
#: Every check name, in the order reports list them (``other_dnc``: a vendor's list of another kind).
CHECKS: tuple[str, ...] = ("federal_dnc", "state_dnc", "internal_dnc", "litigator", "dma", "other_dnc",
                           "reassigned", "line_type", "calling_window")
#: Results of a list check (federal, state, internal, litigator, DMA).
LISTED, NOT_LISTED, NOT_LOADED = "listed", "not_listed", "not_loaded"
#: Results of a reassigned-number check (the FCC database's three answers).
REASSIGNED_YES, REASSIGNED_NO, REASSIGNED_NO_DATA = "yes", "no", "no_data"
#: Results of a line-type check.
WIRELESS, LANDLINE, VOIP, OTHER_LINE, UNKNOWN_LINE = "wireless", "landline", "voip", "other", "unknown"


class Evidence(BaseModel):
    """One check about one phone number.

    - ``check``: which check (:data:`CHECKS`);
    - ``result``: what it found (``listed`` / ``not_listed`` / ``not_loaded`` for lists;
      ``yes`` / ``no`` / ``no_data`` for the reassigned-numbers database; ``wireless`` /
      ``landline`` / ``voip`` / ``other`` / ``unknown`` for the line type; ``open`` for a window);
    - ``source``: where the answer comes from: ``{"file": ..., "date": ...}`` for a data file
      (its date is the date of the data, not of the import), or ``{"vendor": ..., "request_id": ...}``;
    - ``checked_at`` / ``expires_at``: ISO 8601 UTC times; evidence is worth nothing after
      ``expires_at`` (a verdict made from it is ``unknown``, an export refuses it);
    - ``phone``: the number checked (digits, as :func:`phone_key` gives them): evidence about
      another number than the lead's current phone is ignored;
    - ``station``: the station that made the check; ``detail``: anything else worth keeping.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    check: Check
    result: str = Field(min_length=1)
    phone: str = ""
    source: dict[str, str] = Field(default_factory=dict)
    checked_at: str
    expires_at: str
    station: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)

    def expires(self) -> datetime:
        """``expires_at`` as an aware datetime."""
        return parse_time(self.expires_at)

    def expired(self, now: datetime | None = None) -> bool:
        """Whether the evidence is no longer valid at ``now`` (default: the current time)."""
        return (now or utcnow()) >= self.expires()


def utcnow() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    """``dt`` as ISO 8601 in UTC, to the second."""
    return dt.astimezone(UTC).isoformat(timespec="seconds")


def parse_time(text: str | datetime) -> datetime:
    """An ISO date or date-time as an aware UTC datetime (a bare date or naive time is UTC)."""
    dt = text if isinstance(text, datetime) else datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def phone_key(value: Any) -> str:
    """The digits of a phone number, a North American number without its leading 1
    (``+1 (212) 555-0123`` -> ``2125550123``); empty when there are none."""
    digits = "".join(ch for ch in str(value or "") if ch.isdigit())
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits


def make(check: str, result: str, *, station: str, expires_at: datetime, phone: Any = "",
         checked_at: datetime | None = None,
         file: str | None = None, date: datetime | str | None = None, vendor: str | None = None,
         request_id: str | None = None, **detail: Any) -> dict[str, Any]:
    """One evidence item as the JSON-ready dict a station puts in ``dial_evidence``."""
    source: dict[str, str] = {}
    if file is not None:
        source["file"] = file
    if date is not None:
        source["date"] = iso(parse_time(date))
    if vendor is not None:
        source["vendor"] = vendor
    if request_id:
        source["request_id"] = request_id
    ev = Evidence(check=check, result=result, phone=phone_key(phone), source=source,
                  checked_at=iso(checked_at or utcnow()), expires_at=iso(expires_at), station=station,
                  detail={k: v for k, v in detail.items() if v is not None})
    return ev.model_dump()


def expires_after(start: datetime | str, days: float) -> datetime:
    """``start`` plus ``days`` days."""
    return parse_time(start) + timedelta(days=days)


def items(value: Any) -> list[Evidence]:
    """The evidence in a lead's ``dial_evidence`` value: a list of dicts, or its JSON text (as a
    CSV cell or a database column holds it). Items that are not valid evidence are dropped; use
    :func:`invalid_items` to count them."""
    out: list[Evidence] = []
    for raw in _raw_items(value):
        try:
            out.append(Evidence.model_validate(raw))
        except (ValidationError, ValueError, TypeError):
            continue
    return out


def invalid_items(value: Any) -> int:
    """How many items of a ``dial_evidence`` value are not valid evidence."""
    return len(_raw_items(value)) - len(items(value))


def _raw_items(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, Iterable):
        return list(value)
    return [value]


def add(existing: Any, new: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``existing`` evidence (a ``dial_evidence`` value) with ``new`` items added: an earlier item
    of the same check by the same station is replaced, everything else is kept in order."""
    fresh = [Evidence.model_validate(n) for n in new]
    keys = {(e.check, e.station) for e in fresh}
    kept = [e for e in items(existing) if (e.check, e.station) not in keys]
    return [e.model_dump() for e in (*kept, *fresh)]


def latest(evidence: Iterable[Evidence], check: str) -> list[Evidence]:
    """The items of ``check``, newest first."""
    return sorted((e for e in evidence if e.check == check), key=lambda e: parse_time(e.checked_at), reverse=True)


def expired_items(value: Any, now: datetime | None = None, *, recomputable: Iterable[str] = ("calling_window",)
                  ) -> list[Evidence]:
    """The items of a ``dial_evidence`` value that have expired at ``now`` (checks named in
    ``recomputable`` are left out: they can be worked out again offline)."""
    skip = set(recomputable)
    when = now or utcnow()
    return [e for e in items(value) if e.check not in skip and e.expired(when)]
