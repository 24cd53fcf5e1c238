"""Workers on several machines: leads queued on a Redis Stream, consumed through a consumer group.

``waystation enqueue ROUTE INPUT --redis URL`` adds leads to the stream; any number of
``waystation worker ROUTE --redis URL`` processes on any machines consume it:

- **At least once**: a lead is acknowledged (``XACK``) only after its result is written to the
  results stream, so a worker that dies mid-lead leaves it pending.
- **Crashed workers' leads are reclaimed**: every worker periodically runs ``XAUTOCLAIM`` for
  messages idle longer than ``claim_idle`` seconds and runs them itself. Since every worker
  checkpoints into the same store (Redis by default, keyed by the queue's run id), a reclaimed lead
  resumes: completed steps, paid lookups included, are never run again.
- **Poison leads are dead-lettered**: a message delivered more than ``max_deliveries`` times (it keeps
  killing workers), or one that cannot be read at all, is copied to ``<stream>:dead`` with the reason
  and acknowledged.
- **Shared breaker and rate limits**: give steps ``breaker: {shared: redis}`` /
  ``rate_limit: {shared: redis}`` so that every worker sees the same open breaker.

Results go to ``<stream>:results`` (lead id, status, reason, cost, the enriched data as JSON).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from waystation.deferral import run_settled
from waystation.engine import Engine, lead_id_of

log = logging.getLogger("waystation.worker")


@dataclass
class QueueConfig:
    """Names and limits of one lead queue."""

    stream: str = "waystation:leads"
    group: str = "waystation"
    max_deliveries: int = 5
    claim_idle: float = 60.0
    block: float = 1.0
    maxlen: int | None = None

    @property
    def dead_stream(self) -> str:
        """Where poison leads go."""
        return f"{self.stream}:dead"

    @property
    def results_stream(self) -> str:
        """Where results go."""
        return f"{self.stream}:results"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def ensure_group(redis: Any, cfg: QueueConfig) -> None:
    """Create the stream and its consumer group if they do not exist."""
    try:
        await redis.xgroup_create(cfg.stream, cfg.group, id="0", mkstream=True)
    except Exception as exc:  # redis.ResponseError BUSYGROUP: it exists
        if "BUSYGROUP" not in str(exc):
            raise


async def enqueue(redis: Any, cfg: QueueConfig, leads: Iterable[Mapping[str, Any]]) -> int:
    """Add leads to the stream (pipelined); returns how many were added."""
    await ensure_group(redis, cfg)
    count = 0
    pipe = redis.pipeline(transaction=False)
    for lead in leads:
        fields = {"lead": json.dumps(dict(lead), default=str), "lead_id": lead_id_of(lead)}
        if cfg.maxlen:
            pipe.xadd(cfg.stream, fields, maxlen=cfg.maxlen, approximate=True)
        else:
            pipe.xadd(cfg.stream, fields)
        count += 1
        if count % 1000 == 0:
            await pipe.execute()
    await pipe.execute()
    return count


@dataclass
class WorkerStats:
    """What one worker did."""

    done: int = 0
    reclaimed: int = 0
    dead: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


class Worker:
    """Consumes a lead stream with one engine; ``await worker.run()`` until ``stop()``."""

    def __init__(self, engine: Engine, redis: Any, cfg: QueueConfig | None = None, *,
                 consumer: str | None = None, concurrency: int = 16) -> None:
        self.engine = engine
        self.redis = redis
        self.cfg = cfg or QueueConfig()
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.concurrency = max(1, concurrency)
        self.stats = WorkerStats()
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def stop(self) -> None:
        """Stop taking new leads; ``run()`` returns when in-flight leads are done."""
        self._stopping.set()

    async def run(self, *, idle_exit: float | None = None) -> WorkerStats:
        """Consume until stopped (or, with ``idle_exit``, until the stream stays empty that long)."""
        await ensure_group(self.redis, self.cfg)
        idle_since: float | None = None
        loop = asyncio.get_running_loop()
        next_claim = 0.0
        while not self._stopping.is_set():
            free = self.concurrency - len(self._tasks)
            if free <= 0:
                await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                continue
            messages: list[tuple[Any, dict[Any, Any]]] = []
            if loop.time() >= next_claim:
                messages = await self._reclaim(free)
                next_claim = loop.time() + max(0.05, self.cfg.claim_idle / 4)
            if not messages:
                block = 0 if self._tasks else int(self.cfg.block * 1000)
                reply = await self.redis.xreadgroup(self.cfg.group, self.consumer, {self.cfg.stream: ">"},
                                                    count=free, block=block or None)
                for _stream, entries in reply or []:
                    messages.extend(entries)
            if not messages:
                if not self._tasks:
                    idle_since = idle_since or loop.time()
                    if idle_exit is not None and loop.time() - idle_since >= idle_exit:
                        break
                else:
                    await asyncio.wait(self._tasks, timeout=self.cfg.block, return_when=asyncio.FIRST_COMPLETED)
                continue
            idle_since = None
            for msg_id, fields in messages:
                task = asyncio.create_task(self._handle(msg_id, fields))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        return self.stats

    async def _reclaim(self, count: int) -> list[tuple[Any, dict[Any, Any]]]:
        reply = await self.redis.xautoclaim(self.cfg.stream, self.cfg.group, self.consumer,
                                            min_idle_time=int(self.cfg.claim_idle * 1000), start_id="0-0",
                                            count=count)
        claimed = [(mid, f) for mid, f in (reply[1] if reply else []) if f]
        self.stats.reclaimed += len(claimed)
        return claimed

    async def _deliveries(self, msg_id: Any) -> int:
        rows = await self.redis.xpending_range(self.cfg.stream, self.cfg.group, min=msg_id, max=msg_id, count=1)
        return int(rows[0]["times_delivered"]) if rows else 1

    async def _dead(self, msg_id: Any, fields: Mapping[Any, Any], reason: str) -> None:
        entry = {_text(k): _text(v) for k, v in fields.items()}
        entry.update({"reason": reason, "message_id": _text(msg_id)})
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(self.cfg.dead_stream, entry)
        pipe.xack(self.cfg.stream, self.cfg.group, msg_id)
        await pipe.execute()
        self.stats.dead += 1
        log.error("lead %s dead-lettered: %s", entry.get("lead_id", "?"), reason)

    async def _handle(self, msg_id: Any, fields: Mapping[Any, Any]) -> None:
        raw = {_text(k): v for k, v in fields.items()}
        try:
            lead = json.loads(_text(raw["lead"]))
            if not isinstance(lead, dict):
                raise ValueError("lead is not a JSON object")
        except Exception as exc:
            await self._dead(msg_id, fields, f"unreadable lead: {exc}")
            return
        deliveries = await self._deliveries(msg_id)
        if deliveries > self.cfg.max_deliveries:
            await self._dead(msg_id, fields, f"delivered {deliveries} times without finishing")
            return
        lead_id = _text(raw.get("lead_id") or lead_id_of(lead))
        try:
            # a lead deferred by a vendor's wait is run again after it, never acked unfinished
            result = await run_settled(self.engine, lead, lead_id=lead_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, not a step error: leave it pending for a retry elsewhere
            log.exception("lead %s raised; it stays pending (delivery %d)", lead_id, deliveries)
            if deliveries >= self.cfg.max_deliveries:
                await self._dead(msg_id, fields, f"{type(exc).__name__}: {exc}")
            return
        out = {"lead_id": lead_id, "status": result.status, "reason": result.reason or "",
               "cost": repr(result.total_cost), "data": json.dumps(result.data, default=str)}
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(self.cfg.results_stream, out)
        pipe.xack(self.cfg.stream, self.cfg.group, msg_id)
        await pipe.execute()
        self.stats.done += 1
        self.stats.statuses[result.status] = self.stats.statuses.get(result.status, 0) + 1


async def queue_depth(redis: Any, cfg: QueueConfig) -> dict[str, int]:
    """Length of the stream, pending messages, results and dead letters."""
    await ensure_group(redis, cfg)
    pending = await redis.xpending(cfg.stream, cfg.group)
    return {
        "stream": int(await redis.xlen(cfg.stream)),
        "pending": int(pending["pending"]) if pending else 0,
        "results": int(await redis.xlen(cfg.results_stream)),
        "dead": int(await redis.xlen(cfg.dead_stream)),
    }
