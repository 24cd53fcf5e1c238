"""The Dramatiq side: the lead actor, enqueueing, running a worker process, dead letters.

``waystation worker`` runs :func:`run_worker` (one process; start N of them, on any machines).
Dramatiq's own CLI works too, through :mod:`waystation.worker.dramatiq_app`::

    WAYSTATION_REDIS_URL=redis://broker:6379/0 dramatiq waystation.worker.dramatiq_app --processes 4 --threads 16
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import CurrentMessage, Middleware

from waystation.worker.broker import ACTOR_NAME, Deferred, Drained, Heartbeat, make_broker
from waystation.worker.config import WorkerConfig
from waystation.worker.runtime import Runtime

log = logging.getLogger("waystation.worker")

_runtime: Runtime | None = None


def _process_lead(run_id: str, lead_id: str, lead: dict[str, Any]) -> None:
    """The actor: run one lead on the process's event loop (Dramatiq's AsyncIO middleware)."""
    rt = _runtime
    if rt is None:
        raise RuntimeError("no waystation runtime in this worker process")
    message = CurrentMessage.get_current_message()
    suspect = bool(message is not None and message.options.get("ws_suspect"))
    loop_thread = get_event_loop_thread()
    if loop_thread is None:
        raise RuntimeError("the AsyncIO middleware's event loop is not running")
    message_id = message.message_id if message is not None else None
    loop_thread.run_coroutine(rt.process(run_id, lead_id, lead, suspect=suspect, message_id=message_id))


def declare_actor(broker: dramatiq.Broker, cfg: WorkerConfig) -> dramatiq.Actor[Any, Any]:
    """Declare the lead actor on ``broker`` (on queue ``cfg.queue``). A lead handed back at
    shutdown, deferred, held for a retry or refused by this worker's preflight is requeued by
    :class:`~waystation.worker.broker.DurableRetries`: expected, so Dramatiq logs no traceback."""
    if ACTOR_NAME in broker.actors:
        return broker.actors[ACTOR_NAME]
    actor: dramatiq.Actor[Any, Any] = dramatiq.actor(actor_name=ACTOR_NAME, queue_name=cfg.queue, broker=broker,
                                                     max_retries=cfg.max_retries,
                                                     throws=(Drained, Deferred))(_process_lead)
    return actor


def state_client(cfg: WorkerConfig) -> Any:
    """A synchronous Redis client of the fleet's state (for enqueueing and the middleware)."""
    import redis

    return redis.Redis.from_url(cfg.redis_url, socket_timeout=10, socket_connect_timeout=5,
                                health_check_interval=10)


# ------------------------------------------------------------------------------------------ enqueue


def enqueue_messages(cfg: WorkerConfig, run_id: str, leads: Iterable[tuple[str, Mapping[str, Any]]],
                     *, client: Any | None = None, broker: dramatiq.Broker | None = None) -> int:
    """Send one message per ``(lead_id, lead)``; returns how many were sent."""
    client = client or state_client(cfg)
    if broker is None:
        broker, _ = make_broker(cfg, state_client=client, for_worker=False)
    actor = declare_actor(broker, cfg)
    n = 0
    for lead_id, lead in leads:
        actor.send(run_id, lead_id, dict(lead))
        n += 1
    return n


# ------------------------------------------------------------------------------------------ worker


class WorkerHandle:
    """A running worker process's parts (for :func:`run_worker` and tests)."""

    def __init__(self, cfg: WorkerConfig, runtime: Runtime, broker: dramatiq.Broker, worker: dramatiq.Worker,
                 named: dict[str, Any]) -> None:
        self.cfg = cfg
        self.runtime = runtime
        self.broker = broker
        self.worker = worker
        self.named = named
        self.stop_event = threading.Event()


class Lifecycle(Middleware):
    """Opens the runtime on the event loop at worker boot (after the AsyncIO middleware started
    it) and closes it at shutdown (before the loop stops); makes it the actor's runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        global _runtime
        loop_thread = get_event_loop_thread()
        assert loop_thread is not None, "the AsyncIO middleware must come first"
        loop_thread.run_coroutine(self.runtime.start())
        _runtime = self.runtime

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        loop_thread = get_event_loop_thread()
        if loop_thread is not None and loop_thread.loop.is_running():
            loop_thread.run_coroutine(self.runtime.close())


def worker_broker(cfg: WorkerConfig, runtime: Runtime) -> tuple[dramatiq.Broker, dict[str, Any]]:
    """The broker of a worker process, with the actor declared and the runtime attached."""
    client = state_client(cfg)
    broker, named = make_broker(cfg, state_client=client)
    broker.add_middleware(Lifecycle(runtime))
    hb = named.get("heartbeat")
    if isinstance(hb, Heartbeat):
        hb.in_flight = lambda: runtime.in_flight
    declare_actor(broker, cfg)
    return broker, named


def start_worker(cfg: WorkerConfig, runtime: Runtime) -> WorkerHandle:
    """Start a Dramatiq worker (``cfg.concurrency`` threads, each lead on one shared event loop)."""
    broker, named = worker_broker(cfg, runtime)
    dramatiq.set_broker(broker)
    if "prometheus" in named:
        broker.emit_after("process_boot")
        from dramatiq.middleware.prometheus import _run_exposition_server

        threading.Thread(target=_run_exposition_server, name="waystation-metrics", daemon=True).start()
    worker = dramatiq.Worker(broker, worker_threads=cfg.concurrency, worker_timeout=200)
    worker.start()
    return WorkerHandle(cfg, runtime, broker, worker, named)


def stop_worker(handle: WorkerHandle, grace: float) -> None:
    """Drain: take no new lead, let leads in flight finish for ``grace`` seconds, then hand the
    rest back to the queue (their completed steps are checkpointed), and shut down."""
    worker = handle.worker
    for consumer in worker.consumers.values():  # no new messages
        consumer.pause()
    deadline = time.monotonic() + grace
    loop_thread = get_event_loop_thread()
    while time.monotonic() < deadline and (handle.runtime.in_flight or worker.work_queue.unfinished_tasks):
        time.sleep(0.05)
    if loop_thread is not None and handle.runtime.in_flight:
        log.warning("grace period over: handing %d lead(s) back to the queue", handle.runtime.in_flight)
        loop_thread.loop.call_soon_threadsafe(handle.runtime.drain)
    handle.runtime.draining = True
    worker.stop(timeout=int(max(5.0, grace) * 1000))


def run_worker(cfg: WorkerConfig, runtime: Runtime, *, idle_exit: float | None = None,
               on_stop: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run a worker until SIGINT/SIGTERM (or, with ``idle_exit``, until it had nothing to do for
    that many seconds); returns what it did. A second signal exits at once."""
    handle = start_worker(cfg, runtime)
    signals: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        signals.append(signum)
        if len(signals) > 1:
            raise SystemExit(128 + signum)
        if on_stop is not None:
            on_stop(signal.Signals(signum).name)
        handle.stop_event.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        idle_since = time.monotonic()
        last_done = -1
        while not handle.stop_event.wait(0.2):
            if idle_exit is None:
                continue
            busy = runtime.in_flight or handle.worker.work_queue.unfinished_tasks or runtime.done != last_done
            last_done = runtime.done
            if busy:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= idle_exit:
                break
        stop_worker(handle, cfg.grace)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return {"worker_id": cfg.worker_id, "done": runtime.done, "signal": signals[0] if signals else None}


# ------------------------------------------------------------------------------------------ dead letters


def _xq_keys(cfg: WorkerConfig) -> tuple[str, str]:
    ns = f"{cfg.prefix}:dq"
    return f"{ns}:{cfg.queue}.XQ", f"{ns}:{cfg.queue}.XQ.msgs"


def dead_messages(cfg: WorkerConfig, client: Any, run_id: str) -> Iterator[tuple[str, dramatiq.Message[Any]]]:
    """``(redis message id, message)`` of every dead-lettered lead of ``run_id`` (Redis broker)."""
    _, msgs = _xq_keys(cfg)
    for rid, raw in client.hscan_iter(msgs, count=500):
        message = dramatiq.Message.decode(raw)
        if message.actor_name == ACTOR_NAME and message.args and str(message.args[0]) == run_id:
            yield (rid.decode() if isinstance(rid, bytes) else str(rid)), message


def replay_dead(cfg: WorkerConfig, run_id: str, *, client: Any | None = None) -> int:
    """Put every dead-lettered lead of ``run_id`` back on the queue with fresh retries; returns how
    many. Leads resume from their checkpoints (no completed paid step is bought again)."""
    if (cfg.broker_url or cfg.redis_url).split(":", 1)[0].lower() in ("amqp", "amqps"):
        raise NotImplementedError("replay-dead needs the Redis broker; on RabbitMQ move the messages of "
                                  f"{cfg.queue}.XQ back with a shovel")
    from waystation.worker.state import RunKeys

    client = client or state_client(cfg)
    broker, _ = make_broker(cfg, state_client=client, for_worker=False)
    actor = declare_actor(broker, cfg)
    xq, msgs = _xq_keys(cfg)
    keys = RunKeys(cfg.prefix, run_id)
    n = 0
    for rid, message in list(dead_messages(cfg, client, run_id)):
        lead_id = str(message.args[1])
        actor.send(*message.args, **message.kwargs)
        pipe = client.pipeline(transaction=True)
        pipe.zrem(xq, rid)
        pipe.hdel(msgs, rid)
        pipe.hdel(keys.dead, lead_id)
        pipe.delete(f"{cfg.prefix}:deliv:{message.message_id}")
        pipe.hdel(keys.meta, "completed")
        pipe.execute()
        n += 1
    # a dead record whose message already expired from the dead-letter queue cannot be replayed
    return n


def retry_held(cfg: WorkerConfig, run_id: str, *, budget_total: float | None = None,
               client: Any | None = None) -> int:
    """Queue every parked held lead of ``run_id`` again with fresh held retries (see
    :mod:`waystation.worker.held`); with ``budget_total``, set the run's budget to it first (a
    lead the budget held can then continue). Returns how many were queued. They resume from their
    checkpoints: the step that held them runs again, completed paid steps are not bought again."""
    from waystation.budget import to_micros
    from waystation.worker.fleet import fleet_keys
    from waystation.worker.state import RunKeys

    client = client or state_client(cfg)
    keys = RunKeys(cfg.prefix, run_id)
    if not client.exists(keys.meta):
        raise ValueError(f"no worker run {run_id!r} (expired after its TTL, or another --prefix)")
    if budget_total is not None:
        client.hset(fleet_keys(cfg.prefix, run_id)[0], "limit", str(to_micros(budget_total)))
        client.hset(keys.meta, "budget_total", repr(budget_total))
    broker, _ = make_broker(cfg, state_client=client, for_worker=False)
    actor = declare_actor(broker, cfg)
    n = 0
    for raw_id, raw in client.hgetall(keys.held).items():
        lead_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        lead = json.loads(raw).get("input")
        if not isinstance(lead, dict):  # erased on request: stays held, never run again
            log.warning("held lead %s of run %s has no stored input (erased); not queued again", lead_id, run_id)
            continue
        actor.send(run_id, lead_id, lead)
        pipe = client.pipeline(transaction=True)
        pipe.hdel(keys.held, lead_id)
        pipe.hdel(keys.heldtries, lead_id)
        pipe.hdel(keys.meta, "completed")
        pipe.execute()
        n += 1
    return n


def dead_summary(cfg: WorkerConfig, client: Any, run_id: str) -> dict[str, Any]:
    """The dead letters of a run: lead id -> reason."""
    from waystation.worker.state import RunKeys

    raw = client.hgetall(RunKeys(cfg.prefix, run_id).dead)
    return {(k.decode() if isinstance(k, bytes) else k): json.loads(v)["reason"] for k, v in raw.items()}
