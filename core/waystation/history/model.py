"""The run history's data: one run's figures per step, and merging the segments of a run.

The history stores import these from here, never from the ``waystation.history`` package, which
picks a store lazily in ``open_history`` (no import cycle).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from waystation.report import LatencyHistogram

__all__ = ["RunHistory", "StepHistory", "merge_runs"]


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


class StepHistory(BaseModel):
    """One route step's figures in one run (or several merged).

    ``runs`` = vendor calls (``succeeded + failed``, cache hits not included); ``hits`` = calls that
    provided a value; ``misses`` = calls that succeeded without a value; ``cache_hits`` = steps
    answered from the lookup cache (``cache_value_hits`` of them with a value); ``patterns`` maps
    the sorted, comma-joined fields one answer provided (``""`` for none) to how many answers
    (calls and cache hits) provided exactly those; ``latency`` is the log-bucket histogram of
    :class:`~waystation.report.LatencyHistogram`."""

    step: str
    station: str
    paid: bool = False
    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    hits: int = 0
    misses: int = 0
    field_hits: dict[str, int] = Field(default_factory=dict)
    patterns: dict[str, int] = Field(default_factory=dict)
    errors: dict[str, int] = Field(default_factory=dict)
    skipped: dict[str, int] = Field(default_factory=dict)
    cache_hits: int = 0
    cache_value_hits: int = 0
    in_doubt: int = 0
    cost: float = 0.0
    latency: dict[int, int] = Field(default_factory=dict)

    @property
    def answers(self) -> int:
        """Answers seen: succeeded calls plus cache hits (the base of the hit probability)."""
        return self.succeeded + self.cache_hits

    @property
    def hit_rate(self) -> float | None:
        """Calls that provided a value / calls."""
        return self.hits / self.runs if self.runs else None

    @property
    def cost_per_run(self) -> float | None:
        """Average charge per vendor call."""
        return self.cost / self.runs if self.runs else None

    def histogram(self) -> LatencyHistogram:
        """The latency histogram."""
        h = LatencyHistogram()
        h.buckets = {int(k): int(v) for k, v in self.latency.items()}
        h.count = sum(h.buckets.values())
        return h

    @property
    def latency_p50(self) -> float | None:
        """Median call latency (s)."""
        return self.histogram().quantile(0.5)

    @property
    def latency_p95(self) -> float | None:
        """95th percentile call latency (s)."""
        return self.histogram().quantile(0.95)

    def merged(self, other: StepHistory) -> StepHistory:
        """The figures of both (same step)."""
        lat = dict(self.latency)
        for k, v in other.latency.items():
            lat[k] = lat.get(k, 0) + v
        return StepHistory(
            step=self.step, station=self.station, paid=self.paid or other.paid, runs=self.runs + other.runs,
            succeeded=self.succeeded + other.succeeded, failed=self.failed + other.failed,
            hits=self.hits + other.hits, misses=self.misses + other.misses,
            field_hits=_add(self.field_hits, other.field_hits), patterns=_add(self.patterns, other.patterns),
            errors=_add(self.errors, other.errors), skipped=_add(self.skipped, other.skipped),
            cache_hits=self.cache_hits + other.cache_hits,
            cache_value_hits=self.cache_value_hits + other.cache_value_hits,
            in_doubt=self.in_doubt + other.in_doubt, cost=round(self.cost + other.cost, 9), latency=lat)

    def summary(self) -> dict[str, Any]:
        """The JSON form with derived figures (percentiles instead of the raw histogram)."""
        data = self.model_dump(exclude={"latency"})
        data.update(latency_p50=self.latency_p50, latency_p95=self.latency_p95, hit_rate=self.hit_rate,
                    cost_per_run=self.cost_per_run)
        return data


class RunHistory(BaseModel):
    """One run's (or one segment's) record: what ran, on what, when, and each step's figures.

    ``source`` is ``run`` (``waystation run``), ``worker`` or whatever a caller of
    :class:`~waystation.history.collector.HistoryRecorder` names."""

    run_id: str
    segment: str = "main"
    route: str
    input_name: str | None = None
    input_size: int | None = None
    source: str = "run"
    started_at: float
    finished_at: float | None = None
    leads: dict[str, int] = Field(default_factory=dict)
    total_cost: float = 0.0
    steps: list[StepHistory] = Field(default_factory=list)
    segments: int = 1

    @property
    def lead_total(self) -> int:
        """Leads counted (every status)."""
        return sum(self.leads.values())

    def step(self, step_id: str) -> StepHistory:
        """The figures of ``step_id``."""
        for s in self.steps:
            if s.step == step_id:
                return s
        raise KeyError(step_id)

    def summary(self) -> dict[str, Any]:
        """The JSON form (``waystation runs --json``, ``history.runs()`` callers)."""
        data = self.model_dump(exclude={"steps"})
        data["lead_total"] = self.lead_total
        data["steps"] = [s.summary() for s in self.steps]
        return data


def merge_runs(parts: Iterable[RunHistory]) -> RunHistory:
    """One run from its segments: counts added, steps merged by id (in first-seen order)."""
    parts = list(parts)
    if not parts:
        raise ValueError("no segment to merge")
    first = parts[0]
    steps: dict[str, StepHistory] = {}
    leads: dict[str, int] = {}
    for p in parts:
        leads = _add(leads, p.leads)
        for s in p.steps:
            steps[s.step] = steps[s.step].merged(s) if s.step in steps else s
    finished = [p.finished_at for p in parts if p.finished_at is not None]
    return RunHistory(
        run_id=first.run_id, segment="*" if len(parts) > 1 else first.segment, route=first.route,
        input_name=first.input_name, input_size=first.input_size, source=first.source,
        started_at=min(p.started_at for p in parts), finished_at=max(finished) if finished else None,
        leads=leads, total_cost=round(sum(p.total_cost for p in parts), 9), steps=list(steps.values()),
        segments=len(parts))
