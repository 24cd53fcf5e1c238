"""Preflight on the worker: a worker checks a run's route on its own host before taking its leads.

``enqueue`` ran the preflight (:mod:`waystation.preflight`) on the host that queued the run. A
worker on another host may lack what that host had: a station plugin, an API key, a DNC data
file. So each worker checks every run's route again, on its host, when it starts (the runs not
yet finished) and before it runs the first lead of a run it has not seen:

- the route compiles here (every station installed, settings valid);
- every station's required settings have a value here (naming the environment variable);
- every station's own ``preflight()`` passes here (e.g. the DNC data files exist).

(The input's columns were checked at enqueue against the file; they do not depend on the host.)

A worker whose check fails **refuses the run**: it logs every problem once, records them in the
run's ``:refused`` hash under its worker id (``waystation queue RUN`` shows them, ``queue wait``
prints them), and takes none of the run's leads: a lead of the run it fetches goes back on the
queue after ``refuse_delay`` seconds, unrun and with no retry used, for a worker that can run it.
It checks again after ``preflight_recheck`` seconds (a data file may appear); once the check
passes its refusal is removed.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any

from waystation.errors import RouteError
from waystation.plan import Plan, compile_route
from waystation.plugins import PluginHost
from waystation.preflight import check_settings
from waystation.route import Route
from waystation.worker.broker import Deferred
from waystation.worker.config import WorkerConfig
from waystation.worker.state import RunKeys, list_runs, load_meta

log = logging.getLogger("waystation.worker")

#: At start, a worker checks at most this many unfinished runs (the newest).
START_CHECK_LIMIT = 50


class RunRefused(Deferred):
    """This worker's preflight of a run failed: the lead goes back on the queue until
    ``retry_at`` for another worker (no retry used, no result recorded)."""

    def __init__(self, retry_at: float, run_id: str, problems: list[str]) -> None:
        super().__init__(retry_at)
        self.problems = problems
        self.args = (f"this worker refuses run {run_id}: " + "; ".join(problems),)


def compile_checked(meta: dict[str, str], run_id: str, host: PluginHost) -> tuple[Plan | None, list[str]]:
    """The run's plan compiled on this host and the problems of its preflight here (empty: ok)."""
    try:
        route = Route.from_text(meta["route"], f"<route of run {run_id}>")
        route.base_dir = meta.get("route_dir") or None  # relative data paths, as at enqueue
        plan = compile_route(route, host)
    except RouteError as exc:
        return None, [p.message for p in exc.problems]
    return plan, [p.message for p in check_settings(plan)]


class Refusals:
    """The runs this worker refused, and recording them in Redis (see the module docstring)."""

    def __init__(self, cfg: WorkerConfig, client: Any) -> None:
        self.cfg = cfg
        self.client = client
        #: run id -> (when checked, problems)
        self.known: dict[str, tuple[float, list[str]]] = {}

    def cached(self, run_id: str) -> list[str] | None:
        """The problems of a refusal checked less than ``preflight_recheck`` seconds ago."""
        seen = self.known.get(run_id)
        if seen is None or time.monotonic() - seen[0] >= self.cfg.preflight_recheck:
            return None
        return seen[1]

    def refused(self, run_id: str, problems: list[str]) -> RunRefused:
        """The exception that sends a lead of a refused run back to the queue."""
        return RunRefused(time.time() + self.cfg.refuse_delay, run_id, problems)

    async def record(self, run_id: str, problems: list[str]) -> None:
        """Remember (and log, when new) that this worker refuses ``run_id``, or that it no longer does."""
        before = self.known.get(run_id)
        keys = RunKeys(self.cfg.prefix, run_id)
        if not problems:
            self.known.pop(run_id, None)
            if before is not None:
                log.warning("worker %s: the preflight of run %s passes now; taking its leads", self.cfg.worker_id,
                            run_id)
            await self.client.hdel(keys.refused, self.cfg.worker_id)
            return
        self.known[run_id] = (time.monotonic(), problems)
        if before is None or before[1] != problems:
            log.error("worker %s refuses run %s: its preflight failed on this host (%s); its leads are left "
                      "for other workers:\n  %s", self.cfg.worker_id, run_id, socket.gethostname(),
                      "\n  ".join(problems))
        body = {"problems": problems, "host": socket.gethostname(), "at": time.time()}
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(keys.refused, self.cfg.worker_id, json.dumps(body))
        if self.cfg.ttl:
            pipe.expire(keys.refused, self.cfg.ttl)
        await pipe.execute()

    async def check_open_runs(self, host: PluginHost) -> dict[str, list[str]]:
        """At worker start: check every run not yet finished (the newest ``START_CHECK_LIMIT``);
        returns the refused ones with their problems."""
        out: dict[str, list[str]] = {}
        for run_id in (await list_runs(self.client, self.cfg.prefix))[-START_CHECK_LIMIT:]:
            meta = await load_meta(self.client, RunKeys(self.cfg.prefix, run_id))
            if not meta or not meta.get("route") or meta.get("completed") == "1":
                continue
            _plan, problems = compile_checked(meta, run_id, host)
            await self.record(run_id, problems)
            if problems:
                out[run_id] = problems
        return out
