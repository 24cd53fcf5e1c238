"""Held leads on the worker path: retried with backoff, then parked until someone says retry.

A lead is *held* when a gate could not run (vendor down, breaker open, no key, a raising
``decide_stop``) or the run's budget had no room for a paid step (see :mod:`waystation.gates`).
It is not done, nothing after the gate ran for it (no save downstream of the gate), and it is
never recorded as a result. On a worker:

1. **Retried with backoff** (a fault may go away): the lead goes back on the queue with a delay of
   ``held_backoff`` seconds, doubling each time up to ``held_max_backoff``, ``held_retries`` times
   (``worker --held-retries/--held-backoff``). No Dramatiq retry is used up. The rerun resumes
   from the lead's checkpoint: completed steps, paid ones included, are not repeated; the step
   that held it runs again.
2. **Parked** when its retries are used up, or at once when the run's budget held it (a budget
   does not grow by itself): the lead is kept in the run's ``:held`` hash with its reason, cause,
   tries and input, and its message is acknowledged. The run counts it as ``held``; it is
   *finished* once every lead is done, dead-lettered or parked, and ``waystation queue wait`` /
   ``export`` exit 4 (``--fail-on held>0``, the default) while any lead is held.
3. ``waystation queue retry-held RUN [--budget-total USD]`` queues the parked leads again with
   fresh retries (after raising the run's budget, when given).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from waystation.result import LeadResult
from waystation.worker.broker import Deferred
from waystation.worker.config import WorkerConfig
from waystation.worker.state import RunKeys

log = logging.getLogger("waystation.worker")

#: The cause the engine gives a lead the run's (batch or fleet) budget held.
BUDGET_CAUSE = "batch budget"


class HeldRetry(Deferred):
    """A held lead sent back to the queue until ``retry_at`` (no Dramatiq retry used, no result)."""

    def __init__(self, retry_at: float, why: str) -> None:
        super().__init__(retry_at)
        self.args = (f"held: {why}; retried at {retry_at:.0f}",)


def backoff(cfg: WorkerConfig, tries: int) -> float:
    """Seconds before the ``tries``-th retry of a held lead (1-based): doubling, capped."""
    return float(min(cfg.held_max_backoff, cfg.held_backoff * 2 ** max(0, tries - 1)))


def parks_at_once(result: LeadResult) -> bool:
    """Whether a held lead is parked without automatic retries (the budget held it)."""
    return result.cause == BUDGET_CAUSE


async def on_held(client: Any, cfg: WorkerConfig, keys: RunKeys, lead_id: str, lead: dict[str, Any],
                  result: LeadResult) -> None:
    """Retry (raise :class:`HeldRetry`) or park a held lead (see the module docstring)."""
    pipe = client.pipeline(transaction=True)
    pipe.hincrby(keys.heldtries, lead_id, 1)
    if cfg.ttl:
        pipe.expire(keys.heldtries, cfg.ttl)
    tries = int((await pipe.execute())[0])
    why = result.cause or result.reason or "held"
    if not parks_at_once(result) and tries <= cfg.held_retries:
        wait = backoff(cfg, tries)
        pipe = client.pipeline(transaction=True)
        pipe.hdel(keys.inflight, lead_id)
        pipe.hincrby(keys.counts, "held_retries", 1)
        await pipe.execute()
        log.warning("lead %s of run %s held (%s): retry %d of %d in %.0f s", lead_id, keys.run_id, why, tries,
                    cfg.held_retries, wait)
        raise HeldRetry(time.time() + wait, why)
    body = {"status": "held", "reason": result.reason, "cause": result.cause, "tries": tries,
            "cost": round(result.total_cost, 6), "input": lead, "data": result.data, "errors": list(result.errors),
            "worker": cfg.worker_id, "at": time.time()}
    pipe = client.pipeline(transaction=True)
    pipe.hset(keys.held, lead_id, json.dumps(body, default=str))
    pipe.hdel(keys.inflight, lead_id)
    if cfg.ttl:
        pipe.expire(keys.held, cfg.ttl)
    await pipe.execute()
    after = "the run's budget held it" if parks_at_once(result) else f"held {tries} time(s)"
    log.error("lead %s of run %s parked as held (%s): %s; `waystation queue retry-held %s` runs it again",
              lead_id, keys.run_id, after, result.reason or why, keys.run_id)


async def parked(client: Any, keys: RunKeys) -> dict[str, dict[str, Any]]:
    """lead id -> its parked held record."""
    raw = await client.hgetall(keys.held)
    return {(k.decode() if isinstance(k, bytes) else str(k)): json.loads(v) for k, v in raw.items()}
