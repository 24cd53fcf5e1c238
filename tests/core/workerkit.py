"""Helpers of the worker tests: a Redis prefix per test, worker processes, waiting for a run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from fakevendor import WAYSTATION, cli_env
from services import REDIS_URL

PLUGINS = "fakevendor,workerplug"


def env(**extra: str) -> dict[str, str]:
    """A ``waystation`` subprocess environment with the test stations."""
    return cli_env(WAYSTATION_EXTRA_PLUGINS=PLUGINS, **extra)


def fleet_args(prefix: str, redis_url: str = REDIS_URL) -> list[str]:
    return ["--redis-url", redis_url, "--prefix", prefix, "--queue", prefix]


def config(prefix: str, redis_url: str = REDIS_URL, **kw: Any) -> Any:
    from waystation.worker.config import WorkerConfig

    return WorkerConfig(redis_url=redis_url, prefix=prefix, queue=prefix, **kw)


def enqueue(tmp: Path, route: str, rows: list[dict[str, Any]], prefix: str, *extra: str,
            redis_url: str = REDIS_URL, cli: bool = False, budget_total: float | None = None) -> str:
    """Write ``rows`` as CSV and enqueue them (in this process, or with ``waystation enqueue`` when
    ``cli``); returns the run id."""
    import csv

    route_path = tmp / f"route-{time.monotonic_ns()}.yaml"
    route_path.write_text(route)
    leads = tmp / f"leads-{time.monotonic_ns()}.csv"
    with open(leads, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    if not cli:
        from waystation.plugins import PluginHost
        from waystation.worker.runs import enqueue_file

        host = PluginHost()
        host.load_extra_plugins(PLUGINS)
        return enqueue_file(config(prefix, redis_url), route_path, leads, host=host,
                            budget_total=budget_total).run_id
    out = subprocess.run([*WAYSTATION, "enqueue", str(route_path), str(leads), *fleet_args(prefix, redis_url),
                          "--json", *extra], env=env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return str(json.loads(out.stdout.strip().splitlines()[-1])["run_id"])


def start_worker(prefix: str, *extra: str, redis_url: str = REDIS_URL, log: Path | None = None,
                 **envs: str) -> subprocess.Popen[str]:
    """A ``waystation worker`` process (stderr to ``log`` when given)."""
    err = open(log, "a") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen([*WAYSTATION, "worker", *fleet_args(prefix, redis_url), "--heartbeat-timeout", "1",
                             "--retry-backoff", "0.2", *extra], env=env(**envs), stdout=subprocess.PIPE,
                            stderr=err, text=True)


def status(run_id: str, prefix: str, redis_url: str = REDIS_URL, cli: bool = False) -> dict[str, Any]:
    """``waystation queue RUN --json`` (in this process unless ``cli``)."""
    if not cli:
        import asyncio

        from waystation.worker.runs import status as run_status

        got = asyncio.run(run_status(config(prefix, redis_url), run_id))
        assert got is not None
        return got
    out = subprocess.run([*WAYSTATION, "queue", run_id, *fleet_args(prefix, redis_url), "--json"], env=env(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def status_fast(client: Any, run_id: str, prefix: str) -> dict[str, Any]:
    """Counts straight from Redis (no subprocess): done, dead, total, sealed."""
    base = f"{prefix}:run:{{{run_id}}}"
    meta = client.hgetall(f"{base}:meta")
    return {"done": client.hlen(f"{base}:results"), "dead": client.hlen(f"{base}:dead"),
            "held": client.hlen(f"{base}:held"), "leads": int(meta.get(b"leads", 0)),
            "sealed": meta.get(b"sealed") == b"1"}


def wait_finished(client: Any, run_id: str, prefix: str, timeout: float,
                  workers: list[subprocess.Popen[str]] | None = None, restart: Any = None) -> dict[str, Any]:
    """Wait until every lead is done, dead-lettered or parked held; ``restart(i)`` replaces a worker
    that died."""
    deadline = time.monotonic() + timeout
    while True:
        st = status_fast(client, run_id, prefix)
        if st["sealed"] and st["done"] + st["dead"] + st["held"] >= st["leads"]:
            return st
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} not finished after {timeout} s: {st}")
        if workers is not None and restart is not None:
            for i, w in enumerate(workers):
                if w.poll() is not None:
                    workers[i] = restart(i)
        time.sleep(0.1)


def stop(workers: list[subprocess.Popen[str]]) -> None:
    """SIGTERM every worker still running and reap them all."""
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.wait(timeout=30)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()


def results(client: Any, run_id: str, prefix: str) -> dict[str, dict[str, Any]]:
    raw = client.hgetall(f"{prefix}:run:{{{run_id}}}:results")
    return {k.decode(): json.loads(v) for k, v in raw.items()}


def counts(client: Any, run_id: str, prefix: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(f"{prefix}:run:{{{run_id}}}:counts").items()}


def purge(client: Any, prefix: str) -> None:
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
