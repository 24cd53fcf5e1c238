"""Recording a run's history: :class:`HistoryRecorder`, a hook implementation any runner can use.

``waystation run`` registers one per batch; workers register one per process. To record runs
from a runner of your own (a Dramatiq actor, a notebook)::

    from waystation.history import open_history
    from waystation.history.collector import HistoryRecorder

    store = open_history(url)                       # e.g. postgresql+psycopg://.../db
    recorder = HistoryRecorder(store, engine.plan, run_id="nightly-2026-12-01",
                               segment=worker_name, source="worker", input_name="queue:leads")
    engine.host.pm.register(recorder)               # counts every lead as it ends (after_lead)
    engine.refresh_hooks()
    ...                                             # run leads
    await recorder.flush()                          # as often as you like: it writes a snapshot
    await recorder.flush(final=True)                # at the end (sets finished_at)

or let ``asyncio.create_task(recorder.run_periodically(10))`` flush every ten seconds while
the worker lives (cancel it and ``flush(final=True)`` on the way out); ``waystation worker``
does exactly that, with ``segment`` = the consumer name and ``run_id`` = the queue's run id.

Each flush writes the recorder's cumulative figures as segment ``(run_id, segment)``, replacing
its previous write: give every process its own ``segment`` and they never overwrite each other;
readers merge the segments of a run. ``add_state`` counts a lead from its saved checkpoint state
instead (how a resumed batch rebuilds the whole run's figures).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from waystation.history import HistoryStore, RunHistory, StepHistory
from waystation.hooks import hookimpl
from waystation.plan import Plan
from waystation.report import LatencyHistogram
from waystation.result import LeadResult, RunContext, StepRecord

log = logging.getLogger("waystation.history")


class _Step:
    __slots__ = ("fig", "hist")

    def __init__(self, step: str, station: str, paid: bool) -> None:
        self.fig = StepHistory(step=step, station=station, paid=paid)
        self.hist = LatencyHistogram()


def _bump(d: dict[str, int], key: str) -> None:
    d[key] = d.get(key, 0) + 1


class HistoryRecorder:
    """Collects per-step figures of leads as they end and writes them to a history store."""

    def __init__(self, store: HistoryStore | None, plan: Plan, run_id: str, *, segment: str = "main",
                 source: str = "run", input_name: str | None = None, input_size: int | None = None,
                 started_at: float | None = None) -> None:
        self.store = store
        self.plan = plan
        self.run_id = run_id
        self.route = plan.name
        self.segment = segment
        self.source = source
        self.input_name = input_name
        self.input_size = input_size
        self.started_at = started_at if started_at is not None else time.time()
        self.leads: dict[str, int] = {}
        self._steps = {ps.id: _Step(ps.id, ps.spec.station, ps.paid) for ps in plan.steps}

    def empty_copy(self) -> HistoryRecorder:
        """A recorder for the same run and segment with nothing counted yet."""
        return HistoryRecorder(self.store, self.plan, self.run_id, segment=self.segment, source=self.source,
                               input_name=self.input_name, input_size=self.input_size, started_at=self.started_at)

    @hookimpl
    def after_lead(self, ctx: RunContext, result: LeadResult) -> None:
        """Count a lead of this run that ended in this process (a plugin manager may serve the
        engines of several runs: leads of other runs are not counted)."""
        if ctx.run_id not in (None, self.run_id):
            return
        self.add(ctx.steps, ctx.outcomes, result.status)

    def add_state(self, state: Mapping[str, Any]) -> None:
        """Count a lead from its saved state (``RunContext.to_state()``)."""
        status = str(state.get("status", "running"))
        self.add(state.get("steps") or {}, state.get("outcomes") or {},
                 "unfinished" if status == "running" else status)

    def add(self, steps: Mapping[str, StepRecord | Mapping[str, Any]],
            outcomes: Mapping[str, Mapping[str, Any]], status: str) -> None:
        """Count one lead's step records and outcomes."""
        _bump(self.leads, status)
        for sid, rec in steps.items():
            st = self._steps.get(sid)
            if st is None:
                st = self._steps[sid] = _Step(sid, sid, False)
            r = rec if isinstance(rec, StepRecord) else StepRecord.model_validate(rec)
            f = st.fig
            f.cost = round(f.cost + r.cost, 9)
            if r.in_doubt:
                f.in_doubt += 1
            if r.status == "skipped":
                _bump(f.skipped, r.reason or "unknown")
                continue
            if r.status == "failed":
                f.runs += 1
                f.failed += 1
                st.hist.add(r.duration)
                _bump(f.errors, r.error_category or "error")
                continue
            if r.status != "succeeded":
                continue
            provided = sorted(k for k, v in (outcomes.get(sid) or {}).items() if v is not None)
            _bump(f.patterns, ",".join(provided))
            for k in provided:
                _bump(f.field_hits, k)
            if r.cached is not None:
                f.cache_hits += 1
                if provided:
                    f.cache_value_hits += 1
                continue
            f.runs += 1
            f.succeeded += 1
            st.hist.add(r.duration)
            if provided:
                f.hits += 1
            else:
                f.misses += 1

    def snapshot(self, finished: bool = False) -> RunHistory:
        """The figures so far as a :class:`RunHistory` segment."""
        steps = []
        for st in self._steps.values():
            fig = st.fig.model_copy(deep=True)
            fig.latency = dict(st.hist.buckets)
            steps.append(fig)
        return RunHistory(run_id=self.run_id, segment=self.segment, route=self.route, input_name=self.input_name,
                          input_size=self.input_size, source=self.source, started_at=self.started_at,
                          finished_at=time.time() if finished else None, leads=dict(self.leads),
                          total_cost=round(sum(s.cost for s in steps), 9), steps=steps)

    async def flush(self, final: bool = False) -> RunHistory:
        """Write the snapshot to the store (when there is one) and return it."""
        snap = self.snapshot(finished=final)
        if self.store is not None:
            await self.store.record(snap)
        return snap

    async def run_periodically(self, every: float) -> None:
        """Flush every ``every`` seconds until cancelled; a failed flush is logged and retried at
        the next tick (the figures are cumulative, so nothing is lost)."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.flush()
            except Exception as exc:
                log.warning("run history not written (%s: %s); trying again in %.0f s", type(exc).__name__, exc,
                            every)


class HistoryListener:
    """Records every run a worker process serves, for :class:`waystation.worker.runtime.Runtime`
    (an ``EngineListener``): one :class:`HistoryRecorder` per run, segment = this worker's id,
    flushed every ``every`` seconds and when the run's engine closes (the worker stops).

    ``Runtime(cfg, listeners=[HistoryListener(url, cfg.worker_id)])`` is all a worker needs;
    ``waystation worker --history URL`` does it."""

    def __init__(self, url: str, segment: str, *, every: float = 10.0) -> None:
        self.url = url
        self.segment = segment
        self.every = every
        self._store: HistoryStore | None = None
        self._runs: dict[str, tuple[HistoryRecorder, asyncio.Task[None]]] = {}

    async def opened(self, run_id: str, engine: Any, meta: Mapping[str, Any]) -> None:
        """Start recording ``run_id`` (called before its first lead runs in this process)."""
        from waystation.history import open_history

        if self._store is None:
            self._store = open_history(self.url)
        size = meta.get("input_size")
        recorder = HistoryRecorder(self._store, engine.plan, run_id, segment=self.segment, source="worker",
                                   input_name=str(meta.get("input") or f"queue:{run_id}"),
                                   input_size=int(size) if size not in (None, "") else None)
        engine.pm.register(recorder, name=f"waystation.history:{run_id}:{self.segment}")
        engine.refresh_hooks()
        self._runs[run_id] = (recorder, asyncio.create_task(recorder.run_periodically(self.every)))

    async def closed(self, run_id: str, engine: Any) -> None:
        """Write the run's figures one last time and stop recording it."""
        got = self._runs.pop(run_id, None)
        if got is None:
            return
        recorder, task = got
        task.cancel()
        try:
            await recorder.flush(final=True)
        finally:
            engine.pm.unregister(recorder)
            if not self._runs and self._store is not None:
                store, self._store = self._store, None
                await store.close()
