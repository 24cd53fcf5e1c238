"""History written by two worker processes into a shared PostgreSQL (queue and checkpoints in a
shared Redis), then read by `waystation estimate` and `waystation history`."""

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
    import redis

    schema = f"wstest_{uuid.uuid4().hex[:10]}"
    history = f"{PG_URL}?schema={schema}"
    stream = f"wstest:{uuid.uuid4().hex[:8]}:leads"
    client = redis.Redis.from_url(REDIS_URL)
    route = tmp_path / "route.yaml"
    route.write_text(ROUTE)
    leads = write_leads(tmp_path / "queued.csv", range(0, 300))
    other = write_leads(tmp_path / "other.csv", range(5000, 6000))
    try:
        with PricedVendor(PRODUCTS) as vendor:
            e = env(vendor.url)
            subprocess.run([*WAYSTATION, "enqueue", str(leads), "--redis", REDIS_URL, "--stream", stream],
                           env=e, cwd=tmp_path, check=True, capture_output=True, timeout=120)
            workers = [subprocess.Popen(
                [*WAYSTATION, "worker", str(route), "--redis", REDIS_URL, "--stream", stream, "--idle-exit", "2",
                 "--consumer", f"w{i}", "--concurrency", "8", "--checkpoint", f"{REDIS_URL}?prefix={stream}:ck",
                 "--history", history], env=e, cwd=tmp_path, text=True, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE) for i in range(2)]
            done = []
            for w in workers:
                out, err = w.communicate(timeout=300)
                assert w.returncode == 0, err
                done.append(json.loads(out.strip().splitlines()[-1])["done"])
            assert sum(done) == 300 and all(done)  # both workers took part
            calls_a = vendor.total("a")
            run = json.loads(subprocess.run(
                [*WAYSTATION, "history", stream, "--history", history, "--json"], env=e, cwd=tmp_path,
                check=True, capture_output=True, text=True, timeout=120).stdout)
            assert run["segments"] == 2 and run["source"] == "worker" and run["lead_total"] == 300
            steps = {s["step"]: s for s in run["steps"]}
            assert steps["VendorA"]["runs"] == calls_a == 285  # every lead with a state, once
            assert steps["Shout"]["runs"] == 300
            est = json.loads(subprocess.run(
                [*WAYSTATION, "estimate", str(route), str(other), "--history", history, "--json"], env=e,
                cwd=tmp_path, check=True, capture_output=True, text=True, timeout=120).stdout)
            assert vendor.total("a") == calls_a  # the forecast called nothing
        s = {x["step"]: x for x in est["steps"]}
        assert s["VendorA"]["source"].startswith("history: this route (285 answers)")
        assert s["VendorA"]["hit_probability"] == pytest.approx(0.6, abs=0.02)
        assert not est["no_history"]
    finally:
        for key in client.scan_iter(f"{stream}*"):
            client.delete(key)
        client.close()
        drop_pg_schema(schema)
