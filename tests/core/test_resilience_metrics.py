"""Retry and breaker metrics from the hooks: labelled by route/step/station, never by lead."""

from __future__ import annotations

from prometheus_client import generate_latest
from waystation import BreakerPolicy, Engine, Outcome, RetryPolicy, Station, StepContext
from waystation.errors import ServerError
from waystation.resilience.metrics import ResilienceMetrics


async def test_retries_and_breaker_changes_are_exported() -> None:
    class Down(Station):
        """Always 5xx."""

        name = "Down"
        provides = {"d": str}
        retry = RetryPolicy(max_attempts=3, base_delay=0.25, jitter=0)
        breaker = BreakerPolicy(failure_threshold=3, reset_after=60)

        async def process(self, ctx: StepContext) -> Outcome:
            raise ServerError("down", status=503)

    m = ResilienceMetrics()
    async with Engine.from_text("name: r\nsteps:\n  - station: Down\n", [Down], plugins=[m]) as engine:
        for i in range(3):
            await engine.run({"id": f"lead-{i}"})
    get = m.registry.get_sample_value
    labels = {"route": "r", "step": "Down", "station": "Down"}
    assert get("waystation_step_retries_total", {**labels, "category": "server_error"}) == 2
    assert get("waystation_step_retry_delay_seconds_sum", labels) == 0.25 + 0.5
    assert get("waystation_breaker_state", {"station": "Down"}) == 2
    assert get("waystation_breaker_transitions_total",
               {"station": "Down", "old": "closed", "new": "open", "cause": "failures"}) == 1
    assert b"lead-" not in generate_latest(m.registry)
