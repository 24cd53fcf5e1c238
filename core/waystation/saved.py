"""Saved lead states and queued leads are input too: validated when loaded, never trusted blindly.

A checkpoint store or a queue can be written by someone else (a shared Redis, a copied SQLite
file). A state whose types are wrong or whose money is negative (``spent_micros=-5000000`` would
turn a $1 batch budget into $6 left) is *rejected with a reason*: the lead fails visibly, its
input is kept, nothing is called and nothing is trusted (:func:`restore_context`); the budget
ledger leaves it out and lists it (:func:`check_state`).

A saved state is also reused only for the same lead: the same lead id *and* the same input
content (:func:`content_hash`). A different person who arrives under a lead id already used in
the run starts afresh; they never inherit another lead's data or paid results.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, get_args

from pydantic import ValidationError

from waystation.result import LeadStatus, RunContext, StepRecord

if TYPE_CHECKING:
    from waystation.budget import Budget

_STATUSES = frozenset(get_args(LeadStatus))
_SCALARS = (str, int, float, bool, type(None))
#: Step-record numbers that are money, counts or durations: never negative.
_NON_NEGATIVE = ("cost", "pending_cost", "attempts", "duration", "overrun")
_MAX_DEPTH = 16


def content_hash(lead: Mapping[str, Any]) -> str:
    """A hash of a lead's input content (keys and values, order-independent), to tell whether a
    saved state belongs to this lead or to another one that had the same lead id."""
    text = json.dumps({str(k): v for k, v in lead.items()}, sort_keys=True, default=str, ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _bad_number(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or value < 0


def _depth(value: Any, level: int = 0) -> int:
    if level > _MAX_DEPTH:
        return level
    if isinstance(value, Mapping):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


def check_state(state: Any) -> str | None:
    """Why ``state`` (as loaded from a checkpoint store) cannot be trusted, or ``None``."""
    if not isinstance(state, Mapping):
        return f"a saved state must be a JSON object, not {type(state).__name__}"
    if "unreadable" in state:
        return str(state["unreadable"])
    lead_id = state.get("lead_id")
    if not isinstance(lead_id, str) or not lead_id:
        return "lead_id must be non-empty text"
    for key in ("route", "run_id", "reason"):
        if state.get(key) is not None and not isinstance(state.get(key), str):
            return f"{key} must be text"
    if not isinstance(state.get("route"), str):
        return "route must be text"
    inp = state.get("input")
    if not isinstance(inp, Mapping):
        return "input must be an object"
    if _depth(inp) > _MAX_DEPTH:
        return f"input is nested more than {_MAX_DEPTH} deep"
    spent = state.get("spent_micros", 0)
    if isinstance(spent, bool) or not isinstance(spent, int):
        return "spent_micros must be a whole number"
    if spent < 0:
        return f"spent_micros must be >= 0, not {spent}"
    status = state.get("status", "running")
    if status not in _STATUSES:
        return f"status must be one of {', '.join(sorted(_STATUSES))}, not {str(status)[:40]!r}"
    steps = state.get("steps", {})
    if not isinstance(steps, Mapping):
        return f"steps must be an object of step records, not {type(steps).__name__}"
    for sid, rec in steps.items():
        if not isinstance(rec, Mapping):
            return f"step {str(sid)[:40]!r} must be an object"
        for key in _NON_NEGATIVE:
            if key in rec and _bad_number(rec[key]):
                return f"step {str(sid)[:40]!r}: {key} must be a number >= 0, not {str(rec[key])[:40]}"
        try:
            StepRecord.model_validate(dict(rec))
        except ValidationError as exc:
            first = exc.errors()[0]
            return f"step {str(sid)[:40]!r}: {'.'.join(map(str, first['loc']))}: {first['msg']}"
    outcomes = state.get("outcomes", {})
    if not isinstance(outcomes, Mapping) or not all(isinstance(v, Mapping) for v in outcomes.values()):
        return "outcomes must be an object of objects"
    if _depth(outcomes) > _MAX_DEPTH + 1:
        return f"outcomes are nested more than {_MAX_DEPTH} deep"
    for key in ("provenance",):
        value = state.get(key, {})
        if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
            return f"{key} must be an object of objects"
    errors = state.get("errors", [])
    if not isinstance(errors, list) or not all(isinstance(e, str) for e in errors):
        return "errors must be a list of text"
    return None


def restore_context(state: Mapping[str, Any], budget: Budget, lead: Mapping[str, Any]) -> RunContext | None:
    """The run context a saved ``state`` resumes ``lead`` with:

    - ``None`` when the state is another lead's (same lead id, different input): start afresh;
    - a *failed* context (with ``lead`` as its input and a reason, nothing run, nothing spent) when
      the state cannot be trusted (:func:`check_state`);
    - else the saved context (:meth:`RunContext.from_state`).
    """
    problem = check_state(state)
    lead_id = str(state.get("lead_id") or "") if isinstance(state, Mapping) else ""
    if problem is None:
        if content_hash(state["input"]) != content_hash(lead):
            return None
        try:
            return RunContext.from_state(dict(state), budget)
        except (ValidationError, TypeError, ValueError, KeyError) as exc:
            problem = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    route = state.get("route") if isinstance(state, Mapping) and isinstance(state.get("route"), str) else "?"
    rc = RunContext(lead_id or "?", str(route), dict(lead), budget)
    rc.status = "failed"
    rc.reason = f"saved state rejected: {problem}"
    rc.errors.append(rc.reason)
    return rc


def check_queued_lead(value: Any) -> str | None:
    """Why a lead taken from a queue message cannot be run, or ``None``: it must be a JSON object
    of plain values (text, numbers, true/false, null) with text keys."""
    if not isinstance(value, Mapping):
        return f"a queued lead must be a JSON object, not {type(value).__name__}"
    for k, v in value.items():
        if not isinstance(k, str):
            return "a queued lead's keys must be text"
        if not isinstance(v, _SCALARS):
            return f"field {k[:40]!r} must be text, a number, true/false or null"
        if isinstance(v, float) and not math.isfinite(v):
            return f"field {k[:40]!r} is not a finite number"
    return None
