"""Prometheus series for retries and circuit breakers, fed by the ``on_retry`` and
``on_breaker_change`` hooks (labels are route/step/station names, never a lead id).

- ``waystation_step_retries_total{route,step,station,category}``: attempts that failed and were
  retried, by error category.
- ``waystation_step_retry_delay_seconds{route,step,station}``: histogram of the planned waits.
- ``waystation_breaker_state{station}``: 0 closed, 1 half-open, 2 open (as this process last saw it).
- ``waystation_breaker_transitions_total{station,old,new,cause}``: state changes.

Register it next to :class:`waystation.metrics.Metrics`, on the same registry::

    metrics = Metrics()
    engine = Engine.from_route(route, plugins=[metrics, ResilienceMetrics(metrics.registry)])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from waystation.hooks import hookimpl
from waystation.resilience.policies import classify_error

if TYPE_CHECKING:
    from waystation.plan import PlannedStep
    from waystation.result import RunContext

STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}
_DELAY_BUCKETS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class ResilienceMetrics:
    """Retry and breaker series on ``registry`` (a new one when not given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        step = ["route", "step", "station"]
        self.retries = Counter("waystation_step_retries", "Failed attempts that were retried.",
                               [*step, "category"], registry=r)
        self.retry_delay = Histogram("waystation_step_retry_delay_seconds", "Planned wait before a retry.",
                                     step, buckets=_DELAY_BUCKETS, registry=r)
        self.breaker_state = Gauge("waystation_breaker_state", "Breaker state: 0 closed, 1 half-open, 2 open.",
                                   ["station"], registry=r)
        self.transitions = Counter("waystation_breaker_transitions", "Breaker state changes.",
                                   ["station", "old", "new", "cause"], registry=r)

    @hookimpl
    def on_retry(self, step: PlannedStep, ctx: RunContext, error: BaseException, delay: float) -> None:
        """Count the retry and its planned wait."""
        labels = (ctx.route, step.id, step.spec.station)
        self.retries.labels(*labels, classify_error(error)).inc()
        self.retry_delay.labels(*labels).observe(max(0.0, delay))

    @hookimpl
    def on_breaker_change(self, station: str, old: str, new: str, cause: str | None) -> None:
        """Record the new state and the transition."""
        self.breaker_state.labels(station).set(STATE_VALUES.get(new, -1))
        self.transitions.labels(station, old, new, cause or "").inc()
