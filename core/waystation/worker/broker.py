"""The Dramatiq broker of a worker fleet and the middleware waystation adds to it.

:func:`make_broker` builds a Redis broker (default) or a RabbitMQ broker (``amqp://`` URL) with:

- :class:`~dramatiq.middleware.AsyncIO`: one event loop per worker process runs every lead of the
  process (the engine is asyncio);
- :class:`DurableRetries` (Dramatiq's ``Retries``): a lead that raised is retried with exponential
  backoff, then dead-lettered; the retry is enqueued with reconnect-and-backoff so a dropped
  broker connection never loses it, and a lead handed back at shutdown is requeued at once
  without using up a retry;
- :class:`CrashGuard`: counts how often a lead's worker died under it. A lead redelivered after a
  crash is a *suspect* and runs alone in its process; a lead whose worker died ``max_crashes``
  times, at least once while it ran alone, is dead-lettered with that reason — so a lead that
  kills its worker ends in the dead-letter queue and no innocent lead goes with it;
- :class:`Heartbeat` (Redis broker): a thread that refreshes the worker's heartbeat in Dramatiq's
  ``__heartbeats__`` set every ``heartbeat_timeout / 5`` whatever the worker is doing (Dramatiq
  itself heartbeats only as a side effect of its consumers' fetches and acks, so a worker whose
  leads all wait on a slow vendor must not depend on them); it runs Dramatiq's requeue of dead
  workers' messages itself, only after its own connection has been healthy for a whole
  ``heartbeat_timeout`` (so a Redis restart never makes live workers look dead); it keeps the
  health key ``<prefix>:worker:<id>`` and renews the fleet budget leases;
- Dramatiq's ``Prometheus`` middleware when metrics are asked for;
- ``CurrentMessage``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import dramatiq
from dramatiq.middleware import AsyncIO, CurrentMessage, Middleware, Retries, SkipMessage

from waystation.worker.config import WorkerConfig
from waystation.worker.state import RunKeys

log = logging.getLogger("waystation.worker")
T = TypeVar("T")

ACTOR_NAME = "waystation_lead"

_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError)


def _connection_errors() -> tuple[type[BaseException], ...]:
    try:
        import redis

        return (*_CONNECTION_ERRORS, redis.ConnectionError, redis.TimeoutError)
    except ImportError:  # pragma: no cover - redis is part of the workers extra
        return _CONNECTION_ERRORS


def until_connected(fn: Callable[[], T], what: str, stopping: threading.Event | None = None,
                    max_delay: float = 5.0) -> T:
    """Call ``fn`` until it does not raise a connection error, backing off up to ``max_delay``
    seconds between tries (forever, unless ``stopping`` is set)."""
    delay = 0.1
    errors = _connection_errors()
    warned = False
    while True:
        try:
            out = fn()
            if warned:
                log.warning("%s: connection back", what)
            return out
        except errors as exc:
            if stopping is not None and stopping.is_set():
                raise
            if not warned:
                log.warning("%s: connection lost (%s); retrying with backoff", what, exc)
                warned = True
            time.sleep(delay)
            delay = min(max_delay, delay * 2)


class Drained(Exception):
    """A lead handed back because its worker is shutting down (requeued, no retry used)."""


class Deferred(Exception):
    """A lead a vendor asked to wait for longer than the worker sits out (``retry_at``, epoch
    seconds): requeued with that delay, no retry used, no result recorded."""

    def __init__(self, retry_at: float) -> None:
        super().__init__(f"deferred by the vendor until {retry_at:.0f}")
        self.retry_at = retry_at


#: The longest delay Dramatiq accepts for a message (7 days), in ms.
_MAX_DELAY_MS = 7 * 24 * 3600 * 1000 - 1000


class DurableRetries(Retries):
    """Dramatiq's Retries, whose retry enqueue survives a dropped broker connection and which
    requeues a :class:`Drained` lead at once, and a :class:`Deferred` one after its wait, without
    counting a retry."""

    def __init__(self, stopping: threading.Event, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stopping = stopping

    def after_process_message(self, broker: dramatiq.Broker, message: Any, *, result: Any = None,
                              exception: BaseException | None = None) -> None:
        if isinstance(exception, Drained):
            until_connected(lambda: broker.enqueue(message.copy()), "requeue of a drained lead")
            return
        if isinstance(exception, Deferred):
            delay = min(_MAX_DELAY_MS, max(0, int((exception.retry_at - time.time()) * 1000)))
            until_connected(lambda: broker.enqueue(message.copy(), delay=delay), "requeue of a deferred lead")
            return
        super().after_process_message(_DurableEnqueue(broker), message, result=result,  # type: ignore[no-untyped-call]
                                      exception=exception)


class _DurableEnqueue:
    """A broker whose ``enqueue`` retries through connection errors."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self._broker = broker

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        return until_connected(lambda: self._broker.enqueue(message, delay=delay), "retry enqueue")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)


_DELIVERY_LUA = """
local k = KEYS[1]
local starts = tonumber(redis.call('HGET', k, 'starts') or '0')
local ends = tonumber(redis.call('HGET', k, 'ends') or '0')
local istarts = tonumber(redis.call('HGET', k, 'istarts') or '0')
local iends = tonumber(redis.call('HGET', k, 'iends') or '0')
local crashes, icrashes = starts - ends, istarts - iends
if crashes >= tonumber(ARGV[1]) and icrashes >= 1 then
  return {-1, crashes, icrashes}
end
local suspect = 0
if crashes >= 1 then suspect = 1 end
redis.call('HINCRBY', k, 'starts', 1)
redis.call('EXPIRE', k, tonumber(ARGV[2]))
return {suspect, crashes, icrashes}
"""


def delivery_key(prefix: str, message_id: str) -> str:
    """The crash counts of one message: ``starts``/``ends`` of every delivery, ``istarts``/``iends``
    of runs alone (counted by the runtime once the lead really runs alone)."""
    return f"{prefix}:deliv:{message_id}"


class CrashGuard(Middleware):
    """Counts deliveries that never ended (the worker died) and dead-letters a lead that keeps
    killing its worker; records every dead letter with its reason in the run's ``dead`` hash."""

    def __init__(self, cfg: WorkerConfig, client: Any) -> None:
        self.cfg = cfg
        self.client = client
        self._script = client.register_script(_DELIVERY_LUA)
        #: Redis message ids between "processing started" and "acknowledged" (see Heartbeat's sweep)
        self.holding: set[str] = set()
        self._lock = threading.Lock()

    def _hold(self, message: Any, on: bool) -> None:
        rid = message.options.get("redis_message_id")
        if rid:
            with self._lock:
                if on:
                    self.holding.add(rid)
                else:
                    self.holding.discard(rid)

    def held(self) -> set[str]:
        """A snapshot of the ids being processed or acknowledged now."""
        with self._lock:
            return set(self.holding)

    def after_ack(self, broker: dramatiq.Broker, message: Any) -> None:
        self._hold(message, False)

    def _key(self, message: Any) -> str:
        return delivery_key(self.cfg.prefix, message.message_id)

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._hold(message, True)
        if message.actor_name != ACTOR_NAME:
            return
        suspect, crashes, icrashes = until_connected(
            lambda: self._script(keys=[self._key(message)], args=[str(self.cfg.max_crashes), str(self.cfg.ttl)]),
            "delivery count")
        message.options["ws_suspect"] = suspect == 1
        if suspect == -1:
            reason = (f"its worker died {crashes} times while running it ({icrashes} while it ran alone): "
                      "a lead that kills its worker")
            message.options["ws_dead_reason"] = reason
            message.fail()
            raise SkipMessage(reason)
        if crashes:
            log.warning("lead %s was in flight when a worker died (%d time(s)); it runs alone now",
                        message.args[1] if len(message.args) > 1 else "?", crashes)

    def after_process_message(self, broker: dramatiq.Broker, message: Any, *, result: Any = None,
                              exception: BaseException | None = None) -> None:
        if message.actor_name != ACTOR_NAME:
            return
        key = self._key(message)

        def end() -> None:
            pipe = self.client.pipeline(transaction=True)
            if exception is None:
                pipe.delete(key)
            else:
                pipe.hincrby(key, "ends", 1)
            pipe.execute()

        until_connected(end, "delivery count")

    def after_nack(self, broker: dramatiq.Broker, message: Any) -> None:
        self._hold(message, False)
        if message.actor_name != ACTOR_NAME or len(message.args) < 2:
            return
        run_id, lead_id = str(message.args[0]), str(message.args[1])
        reason = message.options.get("ws_dead_reason")
        tb = str(message.options.get("traceback") or "").strip()
        if not reason:
            reason = tb.splitlines()[-1] if tb else "failed"
        record = {"reason": reason, "retries": int(message.options.get("retries", 0)),
                  "message_id": message.message_id, "at": time.time(), "traceback": tb[-4000:]}
        keys = RunKeys(self.cfg.prefix, run_id)

        def put() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(keys.dead, lead_id, json.dumps(record))
            pipe.hdel(keys.inflight, lead_id)
            pipe.delete(self._key(message))
            if self.cfg.ttl:
                pipe.expire(keys.dead, self.cfg.ttl)
            pipe.execute()

        until_connected(put, "dead-letter record")
        log.error("lead %s of run %s dead-lettered: %s", lead_id, run_id, reason)


_MAINTAIN = object()


class Heartbeat(Middleware):
    """The worker's heartbeat, Dramatiq's dead-worker requeue, the health key and fleet-budget
    lease renewal, on a thread of their own (see the module docstring)."""

    def __init__(self, cfg: WorkerConfig, client: Any, on_beat: Callable[[], None] | None = None,
                 guard: CrashGuard | None = None) -> None:
        self.cfg = cfg
        self.client = client
        self.on_beat = on_beat
        self.guard = guard
        self.worker: Any = None
        self.swept = 0
        self._suspects: set[tuple[str, str]] = set()
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at = time.time()
        self.beats = 0
        self.in_flight: Callable[[], int] = lambda: 0

    @property
    def health_key(self) -> str:
        return f"{self.cfg.prefix}:worker:{self.cfg.worker_id}"

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.worker = worker
        self._thread = threading.Thread(target=self._run, args=(broker,), name="waystation-heartbeat",
                                        daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        pass

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(Exception):  # the key expires anyway
            self.client.delete(self.health_key)

    def _run(self, broker: Any) -> None:
        beat = max(0.1, self.cfg.heartbeat_timeout / 5)
        healthy_since: float | None = None
        last_maintenance = 0.0
        redis_broker = hasattr(broker, "broker_id") and hasattr(broker, "scripts")
        while not self.stopping.is_set():
            now = time.time()
            try:
                if redis_broker:
                    self._beat(broker)
                self._health()
                if self.on_beat is not None:
                    self.on_beat()
                healthy_since = healthy_since or now
                self.beats += 1
                # after an outage every worker's heartbeat is stale: wait one whole timeout of
                # healthy connection (every live worker beats again) before calling anyone dead
                if redis_broker and now - healthy_since >= self.cfg.heartbeat_timeout and \
                        now - last_maintenance >= beat * 2:
                    self._maintain(broker)
                    self._sweep(broker)
                    last_maintenance = now
            except _connection_errors() as exc:
                if healthy_since is not None:
                    log.warning("heartbeat: Redis unreachable (%s); retrying", exc)
                healthy_since = None
            except Exception:  # never let the heartbeat thread die
                log.exception("heartbeat failed")
            self.stopping.wait(beat)

    def _beat(self, broker: Any) -> None:
        self.client.zadd(f"{broker.namespace}:__heartbeats__", {broker.broker_id: int(time.time() * 1000)})

    def _health(self) -> None:
        ttl = max(5, int(self.cfg.heartbeat_timeout * 2))
        body = {"worker_id": self.cfg.worker_id, "host": socket.gethostname(), "pid": os.getpid(),
                "started_at": self.started_at, "beat_at": time.time(), "in_flight": self.in_flight(),
                "queue": self.cfg.queue}
        self.client.set(self.health_key, json.dumps(body), ex=ttl)

    def _maintain(self, broker: Any) -> None:
        dispatch = broker.scripts["dispatch"]
        for queue in (self.cfg.queue, f"{self.cfg.queue}.DQ"):
            args = ["qsize", int(time.time() * 1000), queue, broker.broker_id,
                    int(self.cfg.heartbeat_timeout * 1000), broker.dead_message_ttl, "1",
                    broker._max_unpack_size()]
            dispatch(args=args, keys=[broker.namespace])


    def _held_here(self) -> set[str]:
        """Redis ids of the messages this process holds: queued for its worker threads, waiting in
        its consumers' delay queues, or being processed / acknowledged."""
        held = self.guard.held() if self.guard is not None else set()
        worker = self.worker
        if worker is None:
            return held
        queues = [worker.work_queue] + [c.delay_queue for c in list(worker.consumers.values())]
        for q in queues:
            with q.mutex:
                items = list(q.queue)
            for item in items:
                rid = item.message.options.get("redis_message_id")
                if rid:
                    held.add(rid)
        return held

    def _sweep(self, broker: Any) -> None:
        """Requeue messages this worker has fetched (they are in its ack sets) but no longer holds:
        a consumer restarted after a dropped connection forgets the delayed retries it held, and a
        fetch whose reply was lost leaves its messages behind. Only ids seen stranded on two
        sweeps in a row go back (a message in transit from Redis to the work queue is not)."""
        found: set[tuple[str, str]] = set()
        for queue in (self.cfg.queue, f"{self.cfg.queue}.DQ"):
            acks = self.client.smembers(f"{broker.namespace}:__acks__.{broker.broker_id}.{queue}")
            if not acks:
                continue
            held = self._held_here()
            for raw in acks:
                rid = raw.decode() if isinstance(raw, bytes) else str(raw)
                if rid not in held:
                    found.add((queue, rid))
        again = found & self._suspects
        self._suspects = found - again
        by_queue: dict[str, list[str]] = {}
        for queue, rid in again:
            by_queue.setdefault(queue, []).append(rid)
        for queue, ids in by_queue.items():
            args = ["requeue", int(time.time() * 1000), queue, broker.broker_id,
                    int(self.cfg.heartbeat_timeout * 1000), broker.dead_message_ttl, "0",
                    broker._max_unpack_size(), *ids]
            broker.scripts["dispatch"](args=args, keys=[broker.namespace])
            self.swept += len(ids)
            log.warning("requeued %d message(s) of %s this worker had fetched but no longer held", len(ids), queue)


def live_workers(client: Any, prefix: str) -> dict[str, dict[str, Any]]:
    """Workers whose health key is fresh: worker id -> what it last reported."""
    out: dict[str, dict[str, Any]] = {}
    for key in client.scan_iter(f"{prefix}:worker:*", count=500):
        raw = client.get(key)
        if raw:
            body = json.loads(raw)
            out[str(body.get("worker_id"))] = body
    return out


def make_broker(cfg: WorkerConfig, *, state_client: Any, for_worker: bool = True,
                on_beat: Callable[[], None] | None = None, stopping: threading.Event | None = None
                ) -> tuple[dramatiq.Broker, dict[str, Middleware]]:
    """The broker named by ``cfg.broker_url`` with waystation's middleware; returns it and the
    middleware by name (``heartbeat``, ``crash_guard``, ``retries``)."""
    stopping = stopping or threading.Event()
    retries = DurableRetries(stopping, max_retries=cfg.max_retries, min_backoff=int(cfg.min_backoff * 1000),
                             max_backoff=int(cfg.max_backoff * 1000))
    guard = CrashGuard(cfg, state_client)
    middleware: list[Middleware] = [CurrentMessage(), AsyncIO(), guard, retries]
    named: dict[str, Middleware] = {"retries": retries, "crash_guard": guard}
    if cfg.metrics_port is not None and for_worker:
        os.environ.setdefault("dramatiq_prom_host", cfg.metrics_addr)
        os.environ.setdefault("dramatiq_prom_port", str(cfg.metrics_port))
        from dramatiq.middleware.prometheus import Prometheus

        prom = Prometheus()
        middleware.insert(0, prom)
        named["prometheus"] = prom
    url = cfg.broker_url or cfg.redis_url
    scheme = url.split(":", 1)[0].lower()
    broker: dramatiq.Broker
    if scheme in ("amqp", "amqps"):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url, middleware=middleware)
    elif scheme in ("redis", "rediss", "unix"):
        from dramatiq.brokers.redis import RedisBroker

        # maintenance_chance=0: the Heartbeat thread runs the dead-worker requeue itself
        broker = RedisBroker(url=url, middleware=middleware, namespace=f"{cfg.prefix}:dq",  # type: ignore[no-untyped-call]
                             heartbeat_timeout=int(cfg.heartbeat_timeout * 1000),
                             dead_message_ttl=int(cfg.ttl * 1000), maintenance_chance=0)
    else:
        raise ValueError(f"unknown broker URL scheme {scheme!r}: use redis:// or amqp://")
    if for_worker:
        hb = Heartbeat(cfg, state_client, on_beat, guard)
        broker.add_middleware(hb)
        named["heartbeat"] = hb
    return broker, named
