"""Deferred leads: a vendor asked to wait longer than a step may, so the lead waits, not fails.

When a vendor answers 429 with a wait (see :mod:`waystation.resilience.throttle`) that is longer
than the step's retry policy allows (``retry.max_delay``), or arrives on the step's last attempt,
the engine does not spend or fail attempts on it: the step ends *deferred* — its budget
reservation released, its record left ``pending`` with reason ``deferred``, the throttled call not
counted as an attempt — no later step starts, and the lead ends with status ``deferred`` and
``retry_at`` (epoch seconds). Steps already done are kept (and checkpointed), so running the lead
again later (same run, same lead id) goes on from the deferred step; nothing paid is bought twice.

- :func:`run_settled` runs a lead and, while it comes back deferred, waits until ``retry_at`` and
  runs it again (at most ``max_rounds`` times, and only for waits of at most ``max_wait`` seconds,
  15 minutes by default — a vendor asking for longer gets the lead back ``deferred`` at once): the
  batch runner and the worker use it, so a lead is written finished whenever the wait is sane.
- Anything else holding a :class:`~waystation.result.LeadResult` with status ``deferred`` (a
  worker, a script) re-runs it after ``retry_at`` the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import stamina

from waystation.errors import WaystationError
from waystation.resilience.policies import RetryPolicy, classify_error, retry_after_of

if TYPE_CHECKING:
    from waystation.result import LeadResult


class LeadRunner(Protocol):
    """What :func:`run_settled` needs: something that runs one lead (:class:`waystation.engine.Engine`
    is one; this module is below the engine, which imports it)."""

    async def run(self, lead: Mapping[str, Any], *, lead_id: str | None = None) -> LeadResult:
        """Run ``lead`` to its result."""
        ...

#: How many times :func:`run_settled` runs a deferred lead again before returning it deferred.
DEFAULT_ROUNDS = 5
#: The longest wait :func:`run_settled` sits out for a deferred lead (seconds).
DEFAULT_MAX_WAIT = 900.0


class StepDeferred(WaystationError):
    """A step that must wait ``wait`` seconds before the vendor takes another call."""

    category = "deferred"

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


def deferral_for(exc: BaseException, policy: RetryPolicy, last_attempt: bool) -> StepDeferred | None:
    """The deferral ``exc`` calls for: a throttled error with a wait longer than ``policy``'s
    ``max_delay``, or on the last attempt. ``None``: handle it as usual."""
    if not isinstance(exc, Exception) or classify_error(exc) != "throttled":
        return None
    wait = retry_after_of(exc)
    if wait is None or not (wait > policy.max_delay or last_attempt):
        return None
    why = "longer than retry.max_delay" if wait > policy.max_delay else "on the last attempt"
    return StepDeferred(f"deferred: the vendor asked to wait {wait:g} s ({why}): {exc}", wait)


async def run_settled(engine: LeadRunner, lead: Mapping[str, Any], *, lead_id: str | None = None,
                      max_rounds: int = DEFAULT_ROUNDS, max_wait: float = DEFAULT_MAX_WAIT) -> LeadResult:
    """``engine.run(lead)``, and again after each deferral's ``retry_at`` (at most ``max_rounds``
    times, each wait at most ``max_wait`` seconds); the last result is returned (still
    ``deferred`` if the vendor kept asking to wait, or asked for longer than ``max_wait``)."""
    result = await engine.run(lead, lead_id=lead_id)
    rounds = 0
    while result.status == "deferred" and rounds < max_rounds:
        wait = max(0.0, (result.retry_at or 0.0) - time.time())
        if wait > max_wait:
            break
        rounds += 1
        if wait and not stamina.is_testing():
            await asyncio.sleep(wait)
        result = await engine.run(lead, lead_id=lead_id or result.lead_id)
    return result
