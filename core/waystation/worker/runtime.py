"""What a worker process does with one lead, on the event loop of Dramatiq's AsyncIO middleware.

One :class:`Runtime` per process: one engine per run (compiled from the route stored with the
run, cached), one Redis checkpoint store, one async Redis client for the run state, the fleet
budgets and the lease renewal. :meth:`Runtime.process` runs a lead:

1. a *suspect* (redelivered after its worker died) waits until it can run alone in the process;
2. the lead is marked in progress, run by the engine (completed steps come from the checkpoints:
   a redelivered lead never buys a completed paid step again), and its result recorded once;
3. when Redis goes away mid-lead (a restart, a dropped connection), the lead waits for it to come
   back (backing off, up to ``outage_wait`` seconds) and runs again from its last checkpoint,
   without using up a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any, Protocol

from waystation.deferral import run_settled
from waystation.engine import Engine
from waystation.plan import Plan
from waystation.plugins import PluginHost
from waystation.saved import check_queued_lead
from waystation.station import Station
from waystation.stores import CheckpointStore, open_store
from waystation.worker.broker import Deferred, Drained, _connection_errors, delivery_key
from waystation.worker.config import WorkerConfig
from waystation.worker.fleet import FleetBudget, renew_forever
from waystation.worker.held import on_held
from waystation.worker.preflight import Refusals, compile_checked
from waystation.worker.state import RunKeys, load_meta, record_result, run_status

log = logging.getLogger("waystation.worker")


class RunUnavailable(Exception):
    """The run of a message is unknown here (expired, or enqueued to another prefix)."""


def share_by_default(plan: Plan) -> Plan:
    """Make every breaker and rate limit of ``plan`` shared through Redis unless the route step
    or the station says ``shared`` explicitly (``shared: process`` is the opt-out)."""
    for ps in plan.steps:
        cls = ps.station
        if ps.breaker is not None and ps.breaker.shared != "redis":
            explicit = "shared" in (ps.spec.breaker or {}) or (
                cls is not None and cls.breaker is not None and "shared" in cls.breaker.model_fields_set)
            if not explicit:
                ps.breaker = ps.breaker.model_copy(update={"shared": "redis"})
        if ps.rate_limit is not None and ps.rate_limit.shared != "redis":
            explicit = "shared" in (ps.spec.rate_limit or {}) or (
                cls is not None and cls.rate_limit is not None and "shared" in cls.rate_limit.model_fields_set)
            if not explicit:
                ps.rate_limit = ps.rate_limit.model_copy(update={"shared": "redis"})
    return plan


class _Isolation:
    """Many ordinary leads at once, or one suspect alone (writer-preferring)."""

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._running = 0
        self._alone = False
        self._waiting_alone = 0

    @contextlib.asynccontextmanager
    async def hold(self, alone: bool) -> AsyncIterator[None]:
        async with self._cond:
            if alone:
                self._waiting_alone += 1
                try:
                    await self._cond.wait_for(lambda: not self._alone and self._running == 0)
                finally:
                    self._waiting_alone -= 1
                self._alone = True
            else:
                await self._cond.wait_for(lambda: not self._alone and self._waiting_alone == 0)
                self._running += 1
        try:
            yield
        finally:
            async with self._cond:
                if alone:
                    self._alone = False
                else:
                    self._running -= 1
                self._cond.notify_all()


class EngineListener(Protocol):
    """Told when a worker process builds an engine for a run and when it closes it (the seam for
    per-run observers such as the run history: register a plugin on ``engine.pm`` in ``opened``,
    then call ``engine.refresh_hooks()``; flush and unregister in ``closed``)."""

    async def opened(self, run_id: str, engine: Engine, meta: dict[str, str]) -> None:
        """The engine of ``run_id`` was built (before its first lead runs)."""
        ...

    async def closed(self, run_id: str, engine: Engine) -> None:
        """The engine is being closed (the worker stops, or forgets an old run)."""
        ...


class Runtime:
    """A worker process's engines and connections (see the module docstring)."""

    def __init__(self, cfg: WorkerConfig, *, host: PluginHost | None = None,
                 stations: Iterable[type[Station]] | None = None, max_engines: int = 16,
                 listeners: Iterable[EngineListener] = ()) -> None:
        self.cfg = cfg
        if host is None:
            if stations is not None:
                host = PluginHost()
                host.add_stations(stations)
            else:
                host = PluginHost.discover()
        self.host = host
        self.max_engines = max_engines
        self.listeners = list(listeners)
        self.client: Any = None
        self.store: CheckpointStore | None = None
        self.engines: dict[str, Engine] = {}
        self.budgets: dict[str, FleetBudget] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.done = 0
        self._lock: asyncio.Lock | None = None
        self._isolation: _Isolation | None = None
        self._renewer: asyncio.Task[None] | None = None
        self.draining = False
        self.refusals: Refusals | None = None

    async def start(self) -> None:
        """Open the connections (on the event loop that will run the leads)."""
        import redis.asyncio as aioredis

        self.client = aioredis.Redis.from_url(self.cfg.redis_url)
        self.store = open_store(self.cfg.checkpoint_url)
        self._lock = asyncio.Lock()
        self._isolation = _Isolation()
        self._renewer = asyncio.create_task(renew_forever(self.budgets, max(0.5, self.cfg.lease / 4)))
        self.refusals = Refusals(self.cfg, self.client)
        try:  # the runs already queued: say at once which this host cannot run (waystation.worker.preflight)
            await self.refusals.check_open_runs(self.host)
        except Exception as exc:  # Redis away at start: each run is checked again before its first lead
            log.warning("preflight of the queued runs at start failed (%s); each run is checked before its "
                        "first lead", exc)

    async def close(self) -> None:
        """Close engines, the store and the client."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        for run_id, engine in list(self.engines.items()):
            await self._close_engine(run_id, engine)
        self.engines.clear()
        if self.store is not None:
            with contextlib.suppress(Exception):
                await self.store.close()
        if self.client is not None:
            await self.client.aclose()

    @property
    def in_flight(self) -> int:
        """Leads running now."""
        return len(self.tasks)

    async def engine_for(self, run_id: str) -> Engine:
        """The engine of a run (compiled once per process from the route stored with the run)."""
        engine = self.engines.get(run_id)
        if engine is not None:
            return engine
        assert self._lock is not None and self.store is not None
        async with self._lock:
            engine = self.engines.get(run_id)
            if engine is not None:
                return engine
            keys = RunKeys(self.cfg.prefix, run_id)
            assert self.refusals is not None
            refused = self.refusals.cached(run_id)
            if refused is not None:
                raise self.refusals.refused(run_id, refused)
            meta = await load_meta(self.client, keys)
            if meta is None or not meta.get("route"):
                raise RunUnavailable(f"run {run_id!r} is not known under prefix {self.cfg.prefix!r} "
                                     "(expired, or enqueued elsewhere)")
            plan, problems = compile_checked(meta, run_id, self.host)  # this host's preflight
            await self.refusals.record(run_id, problems)
            if plan is None or problems:
                raise self.refusals.refused(run_id, problems)
            if self.cfg.share_state:
                share_by_default(plan)
            fleet = FleetBudget(self.client, self.cfg.prefix, run_id, cap=self.cfg.budget_total,
                                lease=self.cfg.lease, ttl=self.cfg.ttl)
            await fleet.set_limit(self.cfg.budget_total)
            engine = Engine(plan, self.host, checkpointer=self.store, run_id=run_id, shared_budget=fleet,
                            redis_url=self.cfg.redis_url, redis_prefix=self.cfg.prefix,
                            lease_seconds=self.cfg.lease)
            for listener in self.listeners:
                await listener.opened(run_id, engine, meta)
            while len(self.engines) >= self.max_engines:  # forget the oldest run's engine
                old_id = next(iter(self.engines))
                old = self.engines.pop(old_id)
                self.budgets.pop(old_id, None)
                await self._close_engine(old_id, old)
            self.engines[run_id] = engine
            self.budgets[run_id] = fleet
            return engine

    async def process(self, run_id: str, lead_id: str, lead: dict[str, Any], *, suspect: bool = False,
                      message_id: str | None = None) -> str:
        """Run one lead and record its result; returns its status (see the module docstring).
        A ``suspect`` runs alone; its run alone is counted (``istarts``/``iends`` of the message's
        crash counts) only once it really is alone, so a worker that dies while a suspect waits
        its turn is not blamed on it."""
        task = asyncio.current_task()
        assert task is not None and self._isolation is not None
        self.tasks.add(task)
        try:
            async with self._isolation.hold(alone=suspect):
                if self.draining:
                    raise Drained("the worker is shutting down")
                if not (suspect and message_id):
                    return await self._process(run_id, lead_id, lead)
                key = delivery_key(self.cfg.prefix, message_id)
                await self.client.hincrby(key, "istarts", 1)
                try:
                    return await self._process(run_id, lead_id, lead)
                finally:  # not reached when the process dies: that is what istarts - iends counts
                    with contextlib.suppress(Exception):
                        await asyncio.shield(self.client.hincrby(key, "iends", 1))
        except asyncio.CancelledError:
            if self.draining:
                raise Drained("the worker is shutting down; the lead goes back on the queue") from None
            raise
        finally:
            self.tasks.discard(task)

    async def _close_engine(self, run_id: str, engine: Engine) -> None:
        for listener in self.listeners:
            try:
                await listener.closed(run_id, engine)
            except Exception:
                log.exception("closing the engine of run %s: a listener failed", run_id)
        with contextlib.suppress(Exception):
            await engine.close()

    async def _process(self, run_id: str, lead_id: str, lead: dict[str, Any]) -> str:
        problem = check_queued_lead(lead)
        if problem is not None:  # a tampered or garbled message: retried, then dead-lettered with this
            raise ValueError(f"unreadable queued lead {lead_id!r}: {problem}")
        keys = RunKeys(self.cfg.prefix, run_id)
        deadline = time.monotonic() + self.cfg.outage_wait
        delay = 0.2
        while True:
            try:
                engine = await self.engine_for(run_id)
                pipe = self.client.pipeline(transaction=False)
                pipe.hexists(keys.results, lead_id)
                pipe.hset(keys.inflight, lead_id, self.cfg.worker_id)
                finished, _ = await pipe.execute()
                if finished:
                    # its worker recorded the result and died before the acknowledgement: nothing to do
                    pipe = self.client.pipeline(transaction=False)
                    pipe.hincrby(keys.counts, "redelivered_done", 1)
                    pipe.hdel(keys.inflight, lead_id)
                    await pipe.execute()
                    return "redelivered"
                # a vendor's short wait is sat out here (run_settled); a longer one sends the lead
                # back to the queue with that delay, unfinished and unrecorded
                result = await run_settled(engine, lead, lead_id=lead_id)
                if result.status == "deferred":
                    await self.client.hdel(keys.inflight, lead_id)
                    raise Deferred(result.retry_at or time.time() + 60)
                if result.status == "held":  # not a result: retried with backoff, then parked
                    await on_held(self.client, self.cfg, keys, lead_id, lead, result)
                    self.done += 1
                    await self._maybe_complete(keys)
                    return "held"
                body = {"status": result.status, "reason": result.reason, "cost": round(result.total_cost, 6),
                        "data": result.data, "errors": list(result.errors),
                        "failed_steps": {sid: r.error for sid, r in result.steps.items() if r.status == "failed"},
                        "worker": self.cfg.worker_id, "at": time.time()}
                fresh = await record_result(self.client, keys, lead_id, body, self.cfg.ttl)
                if not fresh:
                    log.warning("lead %s of run %s finished again (a redelivery); its first result stands",
                                lead_id, run_id)
                self.done += 1
                await self._maybe_complete(keys)
                return result.status
            except (asyncio.CancelledError, Deferred):
                raise
            except Exception as exc:
                if not self._outage(exc) or time.monotonic() >= deadline:
                    raise
                log.warning("lead %s: Redis unreachable (%s); waiting for it, then resuming from the checkpoint",
                            lead_id, exc)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)
                await self._reset_store()

    async def _reset_store(self) -> None:
        """A store whose queued write failed in an outage keeps raising it: start a fresh one."""
        assert self.store is not None
        old, self.store = self.store, open_store(self.cfg.checkpoint_url)
        for engine in self.engines.values():
            engine.checkpointer = self.store
        with contextlib.suppress(Exception):
            await old.close()

    @staticmethod
    def _outage(exc: BaseException) -> bool:
        errors = _connection_errors()
        seen: BaseException | None = exc
        for _ in range(8):
            if seen is None:
                return False
            if isinstance(seen, errors):
                return True
            seen = seen.__cause__ or seen.__context__
        return False

    async def _maybe_complete(self, keys: RunKeys) -> None:
        """Mark the run complete in the checkpoint store's run list when its last lead is done
        (one round trip per lead; the full status only once at the end)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(keys.meta, ["leads", "sealed", "completed"])
        pipe.hlen(keys.results)
        pipe.hlen(keys.dead)
        pipe.hlen(keys.held)
        (total, sealed, completed), done, dead, held = await pipe.execute()
        if sealed != b"1" or completed is not None or int(done) + int(dead) + int(held) < int(total or 0):
            return
        status = await run_status(self.client, keys)
        if status["finished"]:
            assert self.store is not None
            from waystation.worker.reporting import mark_complete

            await mark_complete(self.store, self.client, keys, status)

    def drain(self) -> None:
        """Cancel every lead in flight (called on the loop when the grace period is over): each is
        handed back to the queue; completed steps are in the checkpoints."""
        self.draining = True
        for task in list(self.tasks):
            task.cancel()
