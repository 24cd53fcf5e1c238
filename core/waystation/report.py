"""What each station did and cost in a batch run: per-station figures, rendered as a table or JSON.

Figures per route step (a station may appear in several steps; each step is its own row):

- ``runs``: calls made (``succeeded + failed``); ``skipped``: steps that ended without a call, by
  reason (``condition``, ``budget``, ``breaker_open``, ``in_doubt``, ...).
- ``p50``/``p95`` latency of the runs, in seconds (from a log-bucket histogram: about 2 % precise,
  memory flat however many leads).
- ``cost``: what the step was charged (including the conservative charge of in-doubt calls).
- ``hit_rate`` = runs that provided at least one value / runs; ``cost_per_hit`` = cost / hits.
- ``in_doubt``: calls whose result was lost in a crash and that followed the station's
  ``in_doubt`` policy on resume.
- ``cache_hits``: steps answered from the lookup cache (no call, no cost; not counted in ``runs``).

The figures are collected by :class:`ReportCollector`, an ``after_lead`` observer that the batch
runner hands to its own engine (never registered on the shared plugin manager, so two batches in
one process each count only their own leads), so they cost nothing per step; and the same
figures can be rebuilt from a run's saved lead states (:func:`report_from_store`), which is what
``waystation report RUN_ID`` and a resumed run use (every lead counted once, whichever process
ran it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from waystation.hooks import hookimpl
from waystation.result import LeadResult, StepRecord

if TYPE_CHECKING:
    from rich.console import Console

    from waystation.stores import CheckpointStore

_RATIO = 1.02  # bucket width of the latency histogram: ~1 % error on a quantile
_LOG = math.log(_RATIO)
_MIN = 1e-6  # durations below one microsecond share bucket 0

#: Lead statuses counted in a report (``held``: a gate fault or the batch budget held it, retried
#: by ``run --resume``; ``rejected``: bad input; ``unfinished``: interrupted).
LEAD_STATUSES = ("succeeded", "stopped", "held", "failed", "rejected", "unfinished")


class LatencyHistogram:
    """Durations in log-spaced buckets: quantiles with ~1 % relative error in constant memory."""

    __slots__ = ("buckets", "count")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0

    def add(self, seconds: float) -> None:
        """Record one duration."""
        b = 0 if seconds <= _MIN else 1 + int(math.log(seconds / _MIN) / _LOG)
        self.buckets[b] = self.buckets.get(b, 0) + 1
        self.count += 1

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) in seconds, or ``None`` when empty."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= rank:
                return 0.0 if b == 0 else _MIN * _RATIO ** (b - 0.5)
        return None  # pragma: no cover


class StationFigures(BaseModel):
    """One route step's figures (see the module docstring for their definitions)."""

    step: str
    station: str
    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)
    hits: int = 0
    in_doubt: int = 0
    cache_hits: int = 0
    cost: float = 0.0
    latency_p50: float | None = None
    latency_p95: float | None = None
    errors: dict[str, int] = Field(default_factory=dict)

    @property
    def hit_rate(self) -> float | None:
        """Runs that provided a value / runs."""
        return self.hits / self.runs if self.runs else None

    @property
    def cost_per_hit(self) -> float | None:
        """Cost / hits."""
        return self.cost / self.hits if self.hits else None

    @property
    def skipped_total(self) -> int:
        """Steps that ended without a call."""
        return sum(self.skipped.values())

    def as_dict(self) -> dict[str, Any]:
        """The JSON form, with the derived figures."""
        return {**self.model_dump(), "hit_rate": self.hit_rate, "cost_per_hit": self.cost_per_hit,
                "skipped_total": self.skipped_total}


class Report(BaseModel):
    """A batch run's report: lead counts by status and one :class:`StationFigures` per step."""

    run_id: str
    route: str
    complete: bool = False
    leads: dict[str, int] = Field(default_factory=lambda: dict.fromkeys(LEAD_STATUSES, 0))
    total_cost: float = 0.0
    budget_total: float | None = None
    #: leads by the cause of their stop, hold or failure (``gate DNCScrubStation: breaker_open``,
    #: ``batch budget``, ``stopped by DNCScrubStation``, ``rejected input`` ...)
    causes: dict[str, int] = Field(default_factory=dict)
    #: spend booked above reservations (USD); 0 unless a station cost more than it declared
    overrun: float = 0.0
    stations: list[StationFigures] = Field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    elapsed: float | None = None
    source: str = "run"
    #: Dial verdicts as exported (after the export-time re-check): ``verdicts`` and ``reasons``
    #: counts, ``stale`` rows resting on expired evidence, ``downgraded`` yes → unknown.
    dial: dict[str, Any] | None = None

    @property
    def lead_total(self) -> int:
        """Every input lead counted."""
        return sum(self.leads.values())

    def station(self, step: str) -> StationFigures:
        """The figures of step ``step``."""
        for s in self.stations:
            if s.step == step:
                return s
        raise KeyError(step)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (``--report report.json``, ``waystation report --json``)."""
        data = self.model_dump(exclude={"stations"})
        data["leads"] = {**self.leads, "total": self.lead_total}
        data["stations"] = [s.as_dict() for s in self.stations]
        return data


class _StepStats:
    __slots__ = ("cache_hits", "cost_micros", "errors", "failed", "hist", "hits", "in_doubt", "skipped",
                 "station", "succeeded")

    def __init__(self, station: str) -> None:
        self.station = station
        self.succeeded = 0
        self.failed = 0
        self.hits = 0
        self.in_doubt = 0
        self.cache_hits = 0
        self.cost_micros = 0
        self.skipped: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.hist = LatencyHistogram()

    def add(self, rec: StepRecord | Mapping[str, Any]) -> None:
        if isinstance(rec, StepRecord):
            status, reason, duration = rec.status, rec.reason, rec.duration
            hit, in_doubt, cost, category = rec.hit, rec.in_doubt, rec.cost, rec.error_category
            cached = rec.cached is not None
        else:
            status, reason = rec.get("status", "pending"), rec.get("reason")
            duration = float(rec.get("duration", 0.0))
            hit, in_doubt = bool(rec.get("hit")), bool(rec.get("in_doubt"))
            cost, category = float(rec.get("cost", 0.0)), rec.get("error_category")
            cached = rec.get("cached") is not None
        if cached and status == "succeeded":
            self.cache_hits += 1
        elif status == "succeeded":
            self.succeeded += 1
            self.hist.add(duration)
            if hit:
                self.hits += 1
        elif status == "failed":
            self.failed += 1
            self.hist.add(duration)
            key = category or "error"
            self.errors[key] = self.errors.get(key, 0) + 1
        elif status == "skipped":
            key = reason or "unknown"
            self.skipped[key] = self.skipped.get(key, 0) + 1
        if in_doubt:
            self.in_doubt += 1
        self.cost_micros += round(cost * 1_000_000)

    def figures(self, step: str) -> StationFigures:
        return StationFigures(
            step=step, station=self.station, runs=self.succeeded + self.failed, succeeded=self.succeeded,
            failed=self.failed, skipped=dict(sorted(self.skipped.items())), hits=self.hits,
            in_doubt=self.in_doubt, cache_hits=self.cache_hits, cost=self.cost_micros / 1_000_000,
            latency_p50=self.hist.quantile(0.5), latency_p95=self.hist.quantile(0.95),
            errors=dict(sorted(self.errors.items())))


class ReportCollector:
    """Aggregates step records into per-station figures (a hook implementation: ``after_lead``).

    ``steps`` is the route's steps in order as ``(step_id, station_name)`` pairs, so that the
    report lists every step, also those that never ran. Memory is constant per step.
    """

    def __init__(self, run_id: str, route: str, steps: Iterable[tuple[str, str]]) -> None:
        self.run_id = run_id
        self.route = route
        self._stats: dict[str, _StepStats] = {sid: _StepStats(station) for sid, station in steps}
        self.started_at = time.time()

    @hookimpl
    def after_lead(self, result: LeadResult) -> None:
        """Count the steps of a lead that ended (the batch runner gives each run's collector to
        that run's engine only, so it sees that run's leads only)."""
        self.add_steps(result.steps)

    def add_steps(self, steps: Mapping[str, StepRecord | Mapping[str, Any]]) -> None:
        """Count one lead's step records (``StepRecord`` objects or their saved dict form)."""
        for sid, rec in steps.items():
            st = self._stats.get(sid)
            if st is None:
                st = self._stats[sid] = _StepStats(sid)
            st.add(rec)

    def report(self, leads: Mapping[str, int] | None = None, *, complete: bool = False,
               budget_total: float | None = None, source: str = "run") -> Report:
        """The :class:`Report` as it stands (``leads``: counts by lead status)."""
        stations = [st.figures(sid) for sid, st in self._stats.items()]
        counts = dict.fromkeys(LEAD_STATUSES, 0)
        counts.update(leads or {})
        now = time.time()
        return Report(run_id=self.run_id, route=self.route, complete=complete, leads=counts,
                      total_cost=sum(s.cost for s in stations), budget_total=budget_total,
                      stations=stations, started_at=self.started_at, finished_at=now,
                      elapsed=now - self.started_at, source=source)


async def report_from_store(store: CheckpointStore, run_id: str, *, route: str | None = None,
                            steps: Iterable[tuple[str, str]] = (), leads: Mapping[str, int] | None = None,
                            complete: bool = False, budget_total: float | None = None) -> Report:
    """Rebuild a run's report from its saved lead states (one streaming pass).

    Lead counts come from ``leads`` when given (the batch runner's output counts, which include
    rejected rows); otherwise from the saved states' statuses (``running`` → ``unfinished``).
    """
    meta = await store.load_run(run_id)
    if route is None:
        route = str((meta or {}).get("route_name") or "?")
    step_list = list(steps) or [tuple(x) for x in (meta or {}).get("steps", [])]
    collector = ReportCollector(run_id, route, step_list)
    counts = dict.fromkeys(LEAD_STATUSES, 0)
    causes: dict[str, int] = {}
    async for state in store.iter_states(run_id):
        collector.add_steps(state.get("steps") or {})
        status = state.get("status", "running")
        key = "unfinished" if status == "running" else str(status)
        counts[key] = counts.get(key, 0) + 1
        cause = state.get("cause")
        if cause and status != "running":
            causes[str(cause)] = causes.get(str(cause), 0) + 1
    if meta and meta.get("started_at"):
        collector.started_at = float(meta["started_at"])
    rep = collector.report(leads if leads is not None else counts, complete=complete,
                           budget_total=budget_total, source="store")
    rep.causes = dict(sorted(causes.items(), key=lambda kv: (-kv[1], kv[0])))
    return rep


def _money(v: float | None) -> str:
    return "-" if v is None else f"${v:,.4f}"


def _secs(v: float | None) -> str:
    if v is None:
        return "-"
    if v < 0.001:
        return f"{v * 1e6:.0f} µs"
    return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def render_report(report: Report, console: Console) -> None:
    """Print ``report`` as a rich table (one row per step) with the lead counts under it."""
    from rich.table import Table

    title = f"run {report.run_id} — route {report.route}" + ("" if report.complete else " (incomplete)")
    table = Table(title=title, title_justify="left")
    show_station = any(s.station != s.step for s in report.stations)
    cols = [("step", "left")] + ([("station", "left")] if show_station else []) + [
        ("runs", "right"), ("ok", "right"), ("failed", "right"), ("skipped", "left"), ("p50", "right"),
        ("p95", "right"), ("cost", "right"), ("hit rate", "right"), ("cost/hit", "right"),
        ("in doubt", "right"), ("cached", "right")]
    for col, just in cols:
        table.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    for s in report.stations:
        skipped = ", ".join(f"{k} {v}" for k, v in s.skipped.items()) or "-"
        row = [s.step] + ([s.station] if show_station else []) + [
            str(s.runs), str(s.succeeded), str(s.failed), skipped, _secs(s.latency_p50), _secs(s.latency_p95),
            _money(s.cost), _pct(s.hit_rate), _money(s.cost_per_hit), str(s.in_doubt), str(s.cache_hits)]
        table.add_row(*row)
    if not console.is_terminal and console.width < 150:
        # a file or a pipe gets the whole table rather than an 80-column squeeze
        from rich.console import Console as _Console

        console = _Console(file=console.file, width=150, highlight=False, color_system=None)
    console.print(table)
    console.print(summary_line(report), markup=False, highlight=False)
    if report.causes:
        console.print("why leads stopped, were held or failed: " + ", ".join(
            f"{k} {v}" for k, v in report.causes.items()), markup=False, highlight=False)
    if report.overrun:
        console.print(f"overrun: {_money(report.overrun)} booked above what was reserved (a station cost more "
                      "than it declared)", markup=False, highlight=False)


def summary_line(report: Report) -> str:
    """``leads: 195 (succeeded 150, stopped 34, held 11); total cost $0.0000 of $1.0000; 2.1 s``."""
    leads = ", ".join(f"{k} {v}" for k, v in report.leads.items() if v) or "none"
    budget = f" of {_money(report.budget_total)}" if report.budget_total is not None else ""
    return (f"leads: {report.lead_total} ({leads}); total cost {_money(report.total_cost)}{budget}"
            + (f"; {report.elapsed:.1f} s" if report.elapsed is not None and report.source == "run" else ""))
