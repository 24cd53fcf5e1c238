"""A/B routes: two routes in one batch, each lead on one side, compared side by side.

``waystation run ROUTE_A INPUT --ab ROUTE_B [--split 50]``:

- **Assignment.** :func:`assign` puts a lead on side A when a stable hash of its lead id (SHA-256,
  :func:`waystation.stats.stable_unit`) falls below ``split`` percent, else on side B. It depends
  on the lead id alone — not on the run, the order of the file or the process — so a resumed run,
  a repeated run and a worker all put the same lead on the same side.
- **Tally.** :class:`ABTally` counts, per side: leads by status, cost, and *hits*: per compared
  field, the leads whose value the route set (the field's provenance names a step of the route, so
  a value the input already had is not a hit); a lead is a hit when any compared field is. The
  compared fields are the fields the routes' paid steps provide (all provided fields when neither
  route has a paid step).
- **Report.** :meth:`ABTally.report` gives A and B side by side — leads, statuses, hits per field,
  cost, cost per lead and per hit — with Wilson 95 % intervals of every hit rate and a
  two-proportion z-test per field, each with a plain-words note (``too few leads to tell`` when a
  side is too small; see :func:`waystation.stats.compare`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from waystation.stats import compare, stable_unit, wilson

Side = Literal["A", "B"]
SIDES: tuple[Side, Side] = ("A", "B")
#: output column naming the side a lead took (``A`` / ``B``); ``_route`` names its route
SIDE_COLUMN = "_ab"


def assign(lead_id: str, split: float = 50.0) -> Side:
    """The side of ``lead_id``: ``A`` for a ``split`` percent share of ids, else ``B``."""
    if not 0.0 <= split <= 100.0:
        raise ValueError(f"split must be between 0 and 100 (got {split:g})")
    return "A" if stable_unit("waystation-ab", lead_id) * 100.0 < split else "B"


def compared_fields(provided: Iterable[tuple[str, bool]]) -> tuple[str, ...]:
    """The fields an A/B run compares, from ``(field, provided by a paid step)`` pairs of both
    routes: the paid steps' fields, else every provided field (sorted, no repeats)."""
    pairs = list(provided)
    paid = sorted({f for f, is_paid in pairs if is_paid})
    return tuple(paid or sorted({f for f, _ in pairs}))


@dataclass
class SideTally:
    """One side's counts."""

    route: str
    leads: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    cost: float = 0.0
    hits: int = 0
    field_hits: dict[str, int] = field(default_factory=dict)

    def summary(self, fields: Iterable[str]) -> dict[str, Any]:
        """The side's figures (JSON-able)."""
        lo, hi = wilson(self.hits, self.leads)
        return {
            "route": self.route, "leads": self.leads, "statuses": dict(sorted(self.statuses.items())),
            "cost": round(self.cost, 6),
            "cost_per_lead": round(self.cost / self.leads, 6) if self.leads else None,
            "hits": self.hits, "hit_rate": round(self.hits / self.leads, 6) if self.leads else None,
            "hit_interval": [round(lo, 6), round(hi, 6)],
            "cost_per_hit": round(self.cost / self.hits, 6) if self.hits else None,
            "field_hits": {f: self.field_hits.get(f, 0) for f in fields},
        }


class ABTally:
    """Counts an A/B run's leads per side (see the module docstring)."""

    def __init__(self, route_a: str, route_b: str, split: float, fields: Iterable[str]) -> None:
        self.split = split
        self.fields = tuple(fields)
        self.sides: dict[Side, SideTally] = {"A": SideTally(route_a), "B": SideTally(route_b)}

    def side_of(self, route: str) -> Side | None:
        """The side that ran ``route`` (``None``: neither)."""
        return next((s for s in SIDES if self.sides[s].route == route), None)

    def add(self, side: Side, status: str, cost: float, provenance: Mapping[str, Any],
            data: Mapping[str, Any]) -> None:
        """Count one lead that ended on ``side``: its status, cost, and which compared fields the
        route set (``provenance`` names a step for each field a step set)."""
        t = self.sides[side]
        t.leads += 1
        t.statuses[status] = t.statuses.get(status, 0) + 1
        t.cost += max(0.0, float(cost))
        got = [f for f in self.fields if f in provenance and data.get(f) not in (None, "")]
        for f in got:
            t.field_hits[f] = t.field_hits.get(f, 0) + 1
        if got:
            t.hits += 1

    def add_state(self, side: Side, state: Mapping[str, Any]) -> None:
        """Count one lead from its saved state (``RunContext.to_state()``; a resumed run)."""
        data: dict[str, Any] = dict(state.get("input") or {})
        for fields in (state.get("outcomes") or {}).values():
            for k, v in (fields or {}).items():
                if data.get(k) in (None, "") or k not in data:
                    data[k] = v
        status = str(state.get("status") or "running")
        self.add(side, "unfinished" if status == "running" else status,
                 int(state.get("spent_micros") or 0) / 1_000_000, state.get("provenance") or {}, data)

    def report(self) -> dict[str, Any]:
        """A and B side by side, with intervals, tests and notes (the ``ab`` part of a run's report)."""
        a, b = self.sides["A"], self.sides["B"]
        overall = compare(a.hits, a.leads, b.hits, b.leads, what="hit rate (any compared field)")
        per_field = {f: compare(a.field_hits.get(f, 0), a.leads, b.field_hits.get(f, 0), b.leads,
                                what=f"{f} hit rate").as_dict() for f in self.fields}
        return {"split": self.split, "fields": list(self.fields),
                "A": a.summary(self.fields), "B": b.summary(self.fields),
                "hit_rate": overall.as_dict(), "field_tests": per_field,
                "cost_per_hit_note": _cost_note(a, b), "note": overall.note}


def _cost_note(a: SideTally, b: SideTally) -> str:
    if not a.hits or not b.hits:
        return "cost per hit: a side has no hit yet"
    ca, cb = a.cost / a.hits, b.cost / b.hits
    if abs(ca - cb) < 1e-12:
        return f"cost per hit: the same on both sides (${ca:.4f})"
    cheaper, dearer = ("A", "B") if ca < cb else ("B", "A")
    return (f"cost per hit: {cheaper} ${min(ca, cb):.4f}, {dearer} ${max(ca, cb):.4f} "
            f"({abs(ca - cb) / max(ca, cb):.0%} less on {cheaper})")


def report_rows(ab: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The side-by-side report as rows (``metric``, ``A``, ``B``) for a table (``cli.output.emit``)."""
    a, b = ab["A"], ab["B"]

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.1%}"

    def interval(lo: float, hi: float) -> str:
        return f"{lo:.1%} to {hi:.1%}"

    def money(v: float | None) -> str:
        return "-" if v is None else f"${v:.4f}"

    rows: list[dict[str, Any]] = [
        {"metric": "route", "A": a["route"], "B": b["route"]},
        {"metric": "leads", "A": a["leads"], "B": b["leads"]},
    ]
    for status in sorted(set(a["statuses"]) | set(b["statuses"])):
        rows.append({"metric": f"  {status}", "A": a["statuses"].get(status, 0), "B": b["statuses"].get(status, 0)})
    rows.append({"metric": "hit rate (95% interval)",
                 "A": f"{pct(a['hit_rate'])} ({interval(*a['hit_interval'])})",
                 "B": f"{pct(b['hit_rate'])} ({interval(*b['hit_interval'])})"})
    for f, test in ab["field_tests"].items():
        rows.append({"metric": f"  {f} hits",
                     "A": f"{test['a_hits']} = {pct(test['a_rate'])} ({interval(*test['a_interval'])})",
                     "B": f"{test['b_hits']} = {pct(test['b_rate'])} ({interval(*test['b_interval'])})"})
    rows += [
        {"metric": "cost", "A": money(a["cost"]), "B": money(b["cost"])},
        {"metric": "cost per lead", "A": money(a["cost_per_lead"]), "B": money(b["cost_per_lead"])},
        {"metric": "cost per hit", "A": money(a["cost_per_hit"]), "B": money(b["cost_per_hit"])},
    ]
    return rows


def report_notes(ab: Mapping[str, Any]) -> list[str]:
    """The plain-words lines under the table: the overall verdict, each field's, the cost note."""
    lines = [f"hit rate: {ab['note']}" + _z(ab["hit_rate"])]
    for f, test in ab["field_tests"].items():
        if test["note"] != ab["note"]:
            lines.append(f"{f}: {test['note']}" + _z(test))
    lines.append(ab["cost_per_hit_note"])
    return lines


def _z(test: Mapping[str, Any]) -> str:
    if test.get("z") is None:
        return ""
    return f" [z = {test['z']:.2f}, p = {test['p_value']:.3g}]"
