"""Prometheus metrics of a batch run, collected through the step hooks (``--metrics-port``).

Exported series (labels ``route``, ``step``, ``station``; never a lead id, so cardinality is
bounded by the route):

- ``waystation_step_runs_total{route,step,station,status}``: steps that called their station,
  ``status`` = ``succeeded`` | ``failed``.
- ``waystation_step_skips_total{route,step,station,reason}``: steps that ended without a call.
- ``waystation_step_errors_total{route,step,station,category}``: failures by error category.
- ``waystation_step_hits_total{route,step,station}``: runs that provided at least one value.
- ``waystation_step_in_doubt_total{route,step,station}``: in-doubt calls met on resume.
- ``waystation_step_cost_usd_total{route,step,station}``: cost recorded (the ``on_cost`` hook).
- ``waystation_step_duration_seconds{route,step,station}``: histogram of run latency.
- ``waystation_leads_total{route,status}``: leads that ended, by status.
- ``waystation_hook_errors_total{hook,plugin}``: hook implementations that raised (contained, see
  :mod:`waystation.hookcall`).

Each :class:`Metrics` has its own ``CollectorRegistry`` so that several runs in one process (tests)
do not collide; :meth:`Metrics.serve` exposes it over HTTP.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, start_http_server

from waystation.hooks import hookimpl
from waystation.plan import PlannedStep
from waystation.result import LeadResult, RunContext

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_STEP = ("route", "step", "station")


class Metrics:
    """Per-station counters and histograms, fed by hook implementations: hand the object to one
    engine as an observer (``Engine(..., observers=[Metrics()])``, what ``waystation run`` does),
    or register it with a plugin manager (``Engine.from_route(..., plugins=[Metrics()])``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.runs = Counter("waystation_step_runs", "Steps that called their station.", [*_STEP, "status"],
                            registry=r)
        self.skips = Counter("waystation_step_skips", "Steps that ended without a call.", [*_STEP, "reason"],
                             registry=r)
        self.errors = Counter("waystation_step_errors", "Failed steps by error category.",
                              [*_STEP, "category"], registry=r)
        self.hits = Counter("waystation_step_hits", "Runs that provided at least one value.", _STEP,
                            registry=r)
        self.in_doubt = Counter("waystation_step_in_doubt", "In-doubt calls met on resume.", _STEP,
                                registry=r)
        self.cost = Counter("waystation_step_cost_usd", "Cost recorded per step (USD).", _STEP, registry=r)
        self.duration = Histogram("waystation_step_duration_seconds", "Latency of step runs.", _STEP,
                                  buckets=_BUCKETS, registry=r)
        self.leads = Counter("waystation_leads", "Leads that ended, by status.", ["route", "status"],
                             registry=r)
        self.hook_errors = Counter("waystation_hook_errors", "Hook implementations that raised.",
                                   ["hook", "plugin"], registry=r)
        self._server: Any = None

    def hook_error(self, hook: str, plugin: str) -> None:
        """Count a contained hook error (called by :class:`waystation.hookcall.HookCaller`)."""
        self.hook_errors.labels(hook, plugin).inc()

    @staticmethod
    def _labels(step: PlannedStep, ctx: RunContext) -> tuple[str, str, str]:
        return ctx.route, step.id, step.spec.station

    @hookimpl
    def after_step(self, step: PlannedStep, ctx: RunContext) -> None:
        """Count a succeeded run, its latency and whether it hit."""
        labels = self._labels(step, ctx)
        rec = ctx.steps.get(step.id)
        self.runs.labels(*labels, "succeeded").inc()
        if rec is not None:
            self.duration.labels(*labels).observe(rec.duration)
            if rec.hit:
                self.hits.labels(*labels).inc()
            if rec.in_doubt:
                self.in_doubt.labels(*labels).inc()

    @hookimpl
    def on_step_error(self, step: PlannedStep, ctx: RunContext) -> None:
        """Count a failed run by category, and its latency."""
        labels = self._labels(step, ctx)
        rec = ctx.steps.get(step.id)
        self.runs.labels(*labels, "failed").inc()
        if rec is not None:
            self.duration.labels(*labels).observe(rec.duration)
            self.errors.labels(*labels, rec.error_category or "error").inc()
            if rec.in_doubt:
                self.in_doubt.labels(*labels).inc()

    @hookimpl
    def on_step_skipped(self, step: PlannedStep, ctx: RunContext, reason: str) -> None:
        """Count a skip by reason."""
        labels = self._labels(step, ctx)
        self.skips.labels(*labels, reason).inc()
        rec = ctx.steps.get(step.id)
        if rec is not None and rec.in_doubt:
            self.in_doubt.labels(*labels).inc()

    @hookimpl
    def on_cost(self, step: PlannedStep, ctx: RunContext, amount: float) -> None:
        """Add a recorded cost."""
        if amount:
            self.cost.labels(*self._labels(step, ctx)).inc(amount)

    @hookimpl
    def after_lead(self, ctx: RunContext, result: LeadResult) -> None:
        """Count a lead that ended."""
        self.leads.labels(ctx.route, result.status).inc()

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Expose the metrics at ``http://addr:port/metrics`` (a daemon thread)."""
        self._server = start_http_server(port, addr=addr, registry=self.registry)

    def stop(self) -> None:
        """Stop the HTTP server, if one was started."""
        server = self._server
        self._server = None
        if isinstance(server, tuple) and server:
            server[0].shutdown()
            server[0].server_close()

    def text(self) -> str:
        """The current exposition text (what a scrape returns)."""
        return bytes(generate_latest(self.registry)).decode()
