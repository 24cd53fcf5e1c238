"""`waystation enqueue` + two `waystation worker` processes over the shipped FREE_ONLY route, then
`waystation queue` and `waystation export` (results like `waystation run`)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from waystation.testing.services import service_missing

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("WAYSTATION_TEST_REDIS", "redis://127.0.0.1:6379/0")
pytestmark = [pytest.mark.redis, pytest.mark.slow]


def redis_or_skip():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except Exception as exc:
        service_missing(f"Redis not reachable at {REDIS_URL}: {exc}")
    return client


def waystation(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "waystation", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_two_workers_drain_the_queue_each_lead_once(tmp_path: Path) -> None:
    client = redis_or_skip()
    shutil.copytree(ROOT / "routes", tmp_path / "routes")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    prefix = f"wstest-{uuid.uuid4().hex[:8]}"
    fleet = ["--redis-url", REDIS_URL, "--prefix", prefix, "--queue", prefix]
    try:
        enq = waystation("enqueue", "routes/free-only.yaml", "examples/leads.csv", *fleet, "--json", cwd=tmp_path)
        out, err = enq.communicate(timeout=120)
        assert enq.returncode == 0, err
        run_id = json.loads(out.strip().splitlines()[-1])["run_id"]
        with open(tmp_path / "examples" / "leads.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        workers = [waystation("worker", *fleet, "--idle-exit", "3", "--concurrency", "8", cwd=tmp_path)
                   for _ in range(2)]
        done = 0
        for w in workers:
            out, err = w.communicate(timeout=300)
            assert w.returncode == 0, err
            done += json.loads(out.strip().splitlines()[-1])["done"]
        results = client.hgetall(f"{prefix}:run:{{{run_id}}}:results")
        ids = {r["id"] for r in rows}
        assert {k.decode() for k in results} == ids and done == len(ids)  # every lead exactly once
        statuses = {json.loads(v)["status"] for v in results.values()}
        # DNC stops some; a lead with no usable phone fails closed at the DNC gate
        assert statuses <= {"succeeded", "stopped", "failed"} and "stopped" in statuses
        q = waystation("queue", run_id, *fleet, "--json", cwd=tmp_path)
        out, err = q.communicate(timeout=60)
        st = json.loads(out)
        assert st["finished"] and st["queued"] == 0 and st["in_progress"] == 0 and st["duplicates"] == 0
        exp = waystation("export", run_id, "-o", "out.csv", *fleet, cwd=tmp_path)
        out, err = exp.communicate(timeout=60)
        assert exp.returncode == 0, err
        with open(tmp_path / "out.csv", newline="", encoding="utf-8") as f:
            got = list(csv.DictReader(f))
        assert [r["id"] for r in got] == [r["id"] for r in rows]
        assert {r["_status"] for r in got} == statuses
    finally:
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
