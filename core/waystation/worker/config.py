"""Settings of a worker fleet (shared by ``enqueue``, ``worker``, ``queue`` and the Dramatiq app)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from waystation.worker.state import DEFAULT_TTL

#: Environment variables read by :meth:`WorkerConfig.from_env` (the ``dramatiq`` CLI path).
REDIS_URL_ENV = "WAYSTATION_REDIS_URL"
BROKER_URL_ENV = "WAYSTATION_BROKER_URL"


def default_worker_id() -> str:
    """``<host>-<pid>``: unique per process; ``worker --health`` finds this host's workers by it."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class WorkerConfig:
    """Where the fleet's state and queue live, and how workers behave.

    ``redis_url``: run state, checkpoints, fleet budget, shared breakers and rate limits (and the
    broker unless ``broker_url`` names another: ``amqp://`` for RabbitMQ). ``prefix``: every key
    starts with it. ``ttl`` (seconds): results, checkpoints and dead letters expire this long after
    a run's last write. Times are in seconds.
    """

    redis_url: str
    broker_url: str | None = None
    prefix: str = "waystation"
    queue: str = "waystation"
    concurrency: int = 16
    budget_total: float | None = None
    ttl: int = DEFAULT_TTL
    heartbeat_timeout: float = 15.0
    lease: float = 60.0
    max_retries: int = 3
    min_backoff: float = 1.0
    max_backoff: float = 60.0
    max_crashes: int = 3
    grace: float = 30.0
    outage_wait: float = 300.0
    #: a held lead (a gate could not run, the budget ran out) is retried this many times, after
    #: ``held_backoff`` seconds doubling up to ``held_max_backoff``, then parked (waystation.worker.held)
    held_retries: int = 5
    held_backoff: float = 30.0
    held_max_backoff: float = 900.0
    #: a lead of a run this worker refused (its preflight failed here) goes back to the queue with
    #: this delay, for a worker that can run it; the preflight is checked again after ``preflight_recheck``
    refuse_delay: float = 10.0
    preflight_recheck: float = 60.0
    share_state: bool = True
    metrics_port: int | None = None
    metrics_addr: str = "127.0.0.1"
    worker_id: str = field(default_factory=default_worker_id)

    @property
    def checkpoint_url(self) -> str:
        """The Redis checkpoint store of worker runs (same server, ``<prefix>:ck`` keys, ``ttl``)."""
        sep = "&" if "?" in self.redis_url else "?"
        return f"{self.redis_url}{sep}prefix={self.prefix}:ck&ttl={self.ttl}"

    @classmethod
    def from_env(cls) -> WorkerConfig:
        """Settings from ``WAYSTATION_REDIS_URL`` / ``WAYSTATION_BROKER_URL`` and
        ``WAYSTATION_WORKER_*`` (``PREFIX``, ``QUEUE``, ``BUDGET_TOTAL``, ``HEARTBEAT_TIMEOUT``,
        ``MAX_RETRIES``, ``MAX_CRASHES``, ``TTL``, ``HELD_RETRIES``, ``HELD_BACKOFF``)."""
        url = os.environ.get(REDIS_URL_ENV)
        if not url:
            raise RuntimeError(f"set {REDIS_URL_ENV} to the Redis URL of the worker fleet")
        env = os.environ.get
        budget = env("WAYSTATION_WORKER_BUDGET_TOTAL")
        return cls(
            redis_url=url, broker_url=env(BROKER_URL_ENV) or None,
            prefix=env("WAYSTATION_WORKER_PREFIX", "waystation"), queue=env("WAYSTATION_WORKER_QUEUE", "waystation"),
            budget_total=float(budget) if budget else None,
            heartbeat_timeout=float(env("WAYSTATION_WORKER_HEARTBEAT_TIMEOUT", "15")),
            max_retries=int(env("WAYSTATION_WORKER_MAX_RETRIES", "3")),
            max_crashes=int(env("WAYSTATION_WORKER_MAX_CRASHES", "3")),
            ttl=int(env("WAYSTATION_WORKER_TTL", str(DEFAULT_TTL))),
            held_retries=int(env("WAYSTATION_WORKER_HELD_RETRIES", "5")),
            held_backoff=float(env("WAYSTATION_WORKER_HELD_BACKOFF", "30")),
        )
