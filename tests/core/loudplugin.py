"""A plugin for the logging tests: a station that fails its first attempt (a retry), one that always
fails (its breaker opens at once), and an ``after_step`` hook that raises. Loaded with
``WAYSTATION_EXTRA_PLUGINS=loudplugin``."""

from __future__ import annotations

from typing import Any, ClassVar

from waystation import BreakerPolicy, Outcome, RetryPolicy, Station, StepContext, hookimpl
from waystation.errors import PermanentError, TransientError

WAYSTATION_API = ">=1,<2"


class Flaky(Station):
    """Fails its first attempt with a transient error, then answers."""

    name = "Flaky"
    provides: ClassVar[dict[str, Any]] = {"flaky": str}
    retry = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01, jitter=0)

    async def process(self, ctx: StepContext) -> Outcome:
        if ctx.attempt == 1:
            raise TransientError("flaky vendor")
        return Outcome({"flaky": "ok"})


class Broken(Station):
    """Always fails for good; its breaker opens at the first failure."""

    name = "Broken"
    provides: ClassVar[dict[str, Any]] = {"broken": str}
    breaker = BreakerPolicy(failure_threshold=1, reset_after=60)

    async def process(self, ctx: StepContext) -> Outcome:
        raise PermanentError("vendor refuses")


@hookimpl
def register_stations() -> list[type[Station]]:
    """The two stations."""
    return [Flaky, Broken]


@hookimpl
def after_step(step: Any, ctx: Any, outcome: Any) -> None:
    """A buggy observer."""
    raise RuntimeError("observer bug")
