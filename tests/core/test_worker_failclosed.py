"""Fail closed on the worker path (#10): held leads and preflight, with real `waystation worker`
processes, Dramatiq on the Redis broker and real Redis (a prefix per test).

- A lead a gate holds (its vendor down for good) is never a result and never saved: it is retried
  with backoff a bounded number of times, then parked; `queue wait` and `export` exit 4; once the
  vendor is back, `queue retry-held` finishes it (and the save runs once per lead).
- A lead the run's budget held is parked at once; `queue retry-held --budget-total` continues it
  and nothing bought is bought again.
- A worker whose preflight of the run fails on its host (no key, no data file) takes none of the
  run's leads, says why once in its log and in the run's status; a worker that has them runs it.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import pytest
from fakevendor import WAYSTATION, FakeVendor
from services import REDIS_URL, require_redis
from workerkit import enqueue, env, fleet_args, purge, results, start_worker, status, stop, wait_finished

pytestmark = [pytest.mark.redis]


@pytest.fixture
def fleet():
    """A Redis key prefix (and Dramatiq queue) of this test only, purged afterwards."""
    require_redis()
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"wsf-{uuid.uuid4().hex[:10]}"
    yield client, prefix
    purge(client, prefix)
    client.close()


def queue_cmd(*args: str, prefix: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WAYSTATION, "queue", *args, *fleet_args(prefix)], env=env(), capture_output=True,
                          text=True, timeout=timeout)


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def gate_route(tmp: Path) -> str:
    return ("name: gated\nsteps:\n"
            f"  - station: WireGate\n    settings: {{down: '{tmp / 'down'}', calls: '{tmp / 'calls.txt'}'}}\n"
            f"  - station: Ledger\n    settings: {{path: '{tmp / 'saved.txt'}'}}\n")


def test_a_held_lead_is_retried_then_parked_never_saved_and_retry_held_finishes_it(fleet, tmp_path: Path
                                                                                   ) -> None:
    client, prefix = fleet
    (tmp_path / "down").write_text("the gate's vendor is down")
    rows = [{"id": f"H{i}", "name": "Ada"} for i in range(4)]
    run_id = enqueue(tmp_path, gate_route(tmp_path), rows, prefix)
    log = tmp_path / "worker.log"
    workers = [start_worker(prefix, "--concurrency", "4", "--held-retries", "2", "--held-backoff", "0.2",
                            log=log)]
    try:
        waited = queue_cmd("wait", run_id, "--timeout", "90", "--interval", "0.2", prefix=prefix)
        # the run finished with every lead parked held: not exit 0
        assert waited.returncode == 4, waited.stdout + waited.stderr
        assert "--fail-on: held = 4 of 4 leads" in waited.stderr
        assert "held 4" in waited.stdout and f"waystation queue retry-held {run_id}" in waited.stdout
        st = status(run_id, prefix)
        assert st["finished"] and st["held"] == 4 and st["done"] == 0 and st["succeeded"] == 0
        assert st["held_retries"] == 8  # two retries per lead, then parked
        assert results(client, run_id, prefix) == {}  # never recorded as a result
        # each lead met the gate 1 + 2 times (bounded), and nothing downstream of the gate ran
        assert Counter(lines(tmp_path / "calls.txt")) == {f"H{i}": 3 for i in range(4)}
        assert lines(tmp_path / "saved.txt") == []
        out = tmp_path / "out.csv"
        exp = subprocess.run([*WAYSTATION, "export", run_id, "-o", str(out), *fleet_args(prefix)], env=env(),
                             capture_output=True, text=True, timeout=60)
        assert exp.returncode == 4, exp.stderr
        with out.open(newline="") as f:
            got = list(csv.DictReader(f))
        assert {r["_status"] for r in got} == {"held"} and len(got) == 4
        assert all("gate WireGate did not pass: server_error" in r["_reason"] for r in got)
        assert all(not r.get("saved") for r in got)
        held_rejects = [json.loads(x) for x in (tmp_path / "out.rejects.jsonl").read_text().splitlines()]
        assert {r["status"] for r in held_rejects} == {"held"} and {r["tries"] for r in held_rejects} == {3}
        assert "parked as held" in log.read_text()

        # an erasure request reaches a parked held lead too (its record keeps the input)
        gone = subprocess.run([*WAYSTATION, "forget", "--lead-id", "H3", "--checkpoint",
                               f"{REDIS_URL}?prefix={prefix}:ck", "--json"], env=env(), capture_output=True,
                              text=True, timeout=60)
        assert gone.returncode == 0, gone.stderr
        assert any(e["what"] == "held leads" and e["count"] == 1 for e in json.loads(gone.stdout)), gone.stdout
        # the vendor is back: retry-held queues them again and they finish, each saved once
        (tmp_path / "down").unlink()
        again = queue_cmd("retry-held", run_id, prefix=prefix)
        assert again.returncode == 0 and "queued 3 held lead(s)" in again.stdout, again.stderr
        waited = queue_cmd("wait", run_id, "--timeout", "90", "--interval", "0.2", prefix=prefix)
        # the erased lead stays held (it was never scrubbed): still not exit 0
        assert waited.returncode == 4, waited.stdout + waited.stderr
        assert "--fail-on: held = 1 of 4 leads" in waited.stderr
    finally:
        stop(workers)
    st = status(run_id, prefix)
    assert st["succeeded"] == 3 and st["held"] == 1
    assert Counter(lines(tmp_path / "saved.txt")) == {f"H{i}": 1 for i in range(3)}
    assert Counter(lines(tmp_path / "calls.txt")) == {"H0": 4, "H1": 4, "H2": 4, "H3": 3}


def test_a_budget_held_lead_is_parked_at_once_and_a_raised_budget_continues_it(fleet, tmp_path: Path) -> None:
    client, prefix = fleet
    n = 10
    with FakeVendor() as vendor:
        route = ("name: paid\nsteps:\n  - station: FakePhoneLookup\n"
                 f"    settings: {{base_url: \"{vendor.url}\"}}\n")
        rows = [{"id": f"L{i:04d}", "name": "Ada"} for i in range(1, n + 1)]
        run_id = enqueue(tmp_path, route, rows, prefix, budget_total=0.05)
        workers = [start_worker(prefix, "--concurrency", "1", "--held-backoff", "30")]
        try:
            wait_finished(client, run_id, prefix, 90)
            st = status(run_id, prefix)
            assert st["succeeded"] == 5 and st["held"] == 5 and st["held_retries"] == 0  # parked at once
            assert vendor.total("lookup") == 5
            waited = queue_cmd("wait", run_id, "--timeout", "30", prefix=prefix)
            assert waited.returncode == 4, waited.stderr
            again = queue_cmd("retry-held", run_id, "--budget-total", "0.10", prefix=prefix)
            assert again.returncode == 0 and "queued 5 held lead(s)" in again.stdout, again.stderr
            waited = queue_cmd("wait", run_id, "--timeout", "90", "--interval", "0.2", prefix=prefix)
            assert waited.returncode == 0, waited.stdout + waited.stderr
        finally:
            stop(workers)
        st = status(run_id, prefix)
        assert st["succeeded"] == n and st["held"] == 0
        assert st["budget"]["spent"] == pytest.approx(0.10) and st["budget"]["reserved"] == 0
        assert set(vendor.calls["lookup"].values()) == {1} and vendor.total("lookup") == n


def test_a_worker_whose_preflight_fails_takes_no_lead_and_says_why(fleet, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    client, prefix = fleet
    data = tmp_path / "dnc.db"
    data.write_text("registry")
    calls = tmp_path / "calls.txt"
    saved = tmp_path / "saved.txt"
    route = ("name: keyed\nsteps:\n"
             f"  - station: KeyedGate\n    settings: {{calls: '{calls}'}}\n"
             f"  - station: Ledger\n    settings: {{path: '{saved}'}}\n")
    monkeypatch.setenv("WSTEST_KEYEDGATE_API_KEY", "k-enqueue")  # the enqueueing host has both
    monkeypatch.setenv("WSTEST_KEYEDGATE_DATA_FILE", str(data))
    rows = [{"id": f"K{i}", "name": "Ada"} for i in range(6)]
    run_id = enqueue(tmp_path, route, rows, prefix)
    monkeypatch.delenv("WSTEST_KEYEDGATE_API_KEY")  # the workers get only what each is given
    monkeypatch.delenv("WSTEST_KEYEDGATE_DATA_FILE")
    bare_log = tmp_path / "bare.log"
    bare = start_worker(prefix, "--concurrency", "4", "--worker-id", "bare", "--refuse-delay", "0.3", log=bare_log,
                        WSTEST_KEYEDGATE_DATA_FILE=str(tmp_path / "missing.db"))
    workers = [bare]
    try:
        waited = queue_cmd("wait", run_id, "--timeout", "6", "--interval", "0.2", prefix=prefix)
        assert waited.returncode == 1  # nothing ran: not finished
        assert "worker bare refuses run" in waited.stderr and "WSTEST_KEYEDGATE_API_KEY" in waited.stderr
        st = status(run_id, prefix)
        problems = " ".join(st["refused"]["bare"]["problems"])
        assert "set the environment variable WSTEST_KEYEDGATE_API_KEY" in problems
        assert "missing.db does not exist" in problems
        assert st["done"] == 0 and st["held"] == 0 and st["dead_lettered"] == 0 and st["queued"] == 6
        assert lines(calls) == [] and lines(saved) == []  # no lead taken, none held one by one
        text = bare_log.read_text()
        assert text.count("refuses run") == 1, text  # said once, clearly, not per lead
        # a worker with the key and the data file runs the run; the bare one still takes nothing
        good = start_worker(prefix, "--concurrency", "4", "--worker-id", "good",
                            WSTEST_KEYEDGATE_API_KEY="k-worker", WSTEST_KEYEDGATE_DATA_FILE=str(data))
        workers.append(good)
        waited = queue_cmd("wait", run_id, "--timeout", "90", "--interval", "0.2", prefix=prefix)
        assert waited.returncode == 0, waited.stdout + waited.stderr
    finally:
        stop(workers)
    got = results(client, run_id, prefix)
    assert {r["worker"] for r in got.values()} == {"good"} and len(got) == 6
    assert Counter(lines(saved)) == {f"K{i}": 1 for i in range(6)}
    assert os.path.exists(bare_log)
