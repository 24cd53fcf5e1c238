"""`waystation enqueue` + two `waystation worker` processes over the shipped FREE_ONLY route."""

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

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("WAYSTATION_TEST_REDIS", "redis://127.0.0.1:6379/0")
pytestmark = [pytest.mark.redis, pytest.mark.slow]


def redis_or_skip():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required under CI=true but {REDIS_URL} is unreachable: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    return client


def waystation(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "waystation", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_two_workers_drain_the_queue_each_lead_once(tmp_path: Path) -> None:
    client = redis_or_skip()
    shutil.copytree(ROOT / "routes", tmp_path / "routes")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    stream = f"wstest:{uuid.uuid4().hex[:8]}:leads"
    try:
        enq = waystation("enqueue", "examples/leads.csv", "--redis", REDIS_URL, "--stream", stream, cwd=tmp_path)
        out, err = enq.communicate(timeout=120)
        assert enq.returncode == 0, err
        with open(tmp_path / "examples" / "leads.csv", newline="", encoding="utf-8") as f:
            ids = {row["id"] for row in csv.DictReader(f)}
        assert f"queued {len(ids)}" in out or "queued" in out
        workers = [waystation("worker", "routes/free-only.yaml", "--redis", REDIS_URL, "--stream", stream,
                              "--idle-exit", "3", "--consumer", f"w{i}", "--concurrency", "8",
                              "--checkpoint", f"{REDIS_URL}?prefix={stream}:ck", cwd=tmp_path)
                   for i in range(2)]
        stats = []
        for w in workers:
            out, err = w.communicate(timeout=300)
            assert w.returncode == 0, err
            stats.append(json.loads(out.strip().splitlines()[-1]))
        results = client.xrange(f"{stream}:results")
        done = [f[b"lead_id"].decode() for _, f in results]
        assert len(done) == len(set(done)) == len(ids)  # every lead exactly once
        assert sum(s["done"] for s in stats) == len(ids)
        statuses = {f[b"status"].decode() for _, f in results}
        assert statuses <= {"succeeded", "stopped"} and "stopped" in statuses  # DNC stops some
        depth = waystation("queue", "--redis", REDIS_URL, "--stream", stream, cwd=tmp_path)
        out, _ = depth.communicate(timeout=60)
        assert json.loads(out)["pending"] == 0
    finally:
        for key in client.scan_iter(f"{stream}*"):
            client.delete(key)
