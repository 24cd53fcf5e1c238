"""History written by two worker processes (Dramatiq, queue and checkpoints in a shared Redis)
into a shared PostgreSQL, then read by `waystation estimate`, `waystation history` and `runs`."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from costvendor import PricedVendor
from services import PG_URL, REDIS_URL, drop_pg_schema, require_postgres, require_redis
from test_estimate import PRODUCTS, ROUTE, WAYSTATION, env, write_leads

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


def test_two_workers_record_one_run_that_estimate_reads(tmp_path: Path) -> None:
    require_redis()
    require_postgres()
    pytest.importorskip("dramatiq")
    import redis

    schema = f"wstest_{uuid.uuid4().hex[:10]}"
    history = f"{PG_URL}?schema={schema}"
    prefix = f"wstest-{uuid.uuid4().hex[:8]}"
    fleet = ["--redis-url", REDIS_URL, "--prefix", prefix, "--queue", prefix]
    client = redis.Redis.from_url(REDIS_URL)
    route = tmp_path / "route.yaml"
    route.write_text(ROUTE)
    leads = write_leads(tmp_path / "queued.csv", range(0, 300))
    other = write_leads(tmp_path / "other.csv", range(5000, 6000))

    def ws(*args: str, e: dict[str, str]) -> str:
        proc = subprocess.run([*WAYSTATION, *args], env=e, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    try:
        with PricedVendor(PRODUCTS) as vendor:
            vendor.delay = 0.02  # so that both workers take part
            e = env(vendor.url)
            run_id = json.loads(ws("enqueue", str(route), str(leads), *fleet, "--json", e=e).strip().splitlines()[-1])[
                "run_id"]
            workers = [subprocess.Popen(
                [*WAYSTATION, "worker", *fleet, "--idle-exit", "3", "--concurrency", "2", "--worker-id", f"w{i}",
                 "--history", history], env=e, cwd=tmp_path, text=True, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE) for i in range(2)]
            done = []
            for w in workers:
                out, err = w.communicate(timeout=300)
                assert w.returncode == 0, err
                done.append(json.loads(out.strip().splitlines()[-1])["done"])
            assert sum(done) == 300 and all(done)  # both workers took part
            calls_a = vendor.total("a")
            run = json.loads(ws("history", run_id, "--history", history, "--json", e=e))
            assert run["segments"] == 2 and run["source"] == "worker" and run["lead_total"] == 300
            steps = {s["step"]: s for s in run["steps"]}
            assert steps["VendorA"]["succeeded"] == calls_a == 285  # every lead with a state, once
            assert steps["Shout"]["runs"] == 300
            listed = json.loads(ws("runs", "--history", "--history-url", history, "--json", e=e))
            assert [r["run_id"] for r in listed] == [run_id]
            est = json.loads(ws("estimate", str(route), str(other), "--history", history, "--json", e=e))
            assert vendor.total("a") == calls_a  # the forecast called nothing
        s = {x["step"]: x for x in est["steps"]}
        assert s["VendorA"]["source"].startswith("history: this route (285 answers)")
        assert s["VendorA"]["hit_probability"] == pytest.approx(0.6, abs=0.02)
        assert not est["no_history"]
    finally:
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()
        drop_pg_schema(schema)
