"""Workers on Dramatiq, tested as an operator runs them: real Redis (a prefix per test), `waystation
enqueue` / `worker` / `queue` / `export` processes, a fake paid vendor on 127.0.0.1.

Checked: every lead done exactly once and no completed paid step bought twice when workers are
SIGKILLed (a); a vendor slower than the heartbeat timeout plus a shared rate limit that makes leads
wait steal nothing (b); a Redis restart mid-run loses nothing (c); a lead that raises, and a lead
that kills its worker, end dead-lettered alone (d) and finish after `replay-dead` once fixed (f);
3 workers never spend past `--budget-total` together (e); every enqueue is its own run (#19).
"""

from __future__ import annotations

import csv
import json
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from fakevendor import WAYSTATION, FakeVendor
from services import REDIS_URL, require_redis
from workerkit import (
    counts,
    enqueue,
    env,
    fleet_args,
    purge,
    results,
    start_worker,
    status,
    stop,
    wait_finished,
)

pytestmark = [pytest.mark.redis]


@pytest.fixture
def fleet():
    """A Redis key prefix (and Dramatiq queue) of this test only, purged afterwards."""
    require_redis()
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"wsw-{uuid.uuid4().hex[:10]}"
    yield client, prefix
    purge(client, prefix)
    client.close()


@pytest.fixture
def vendor():
    with FakeVendor() as v:
        yield v


def lookup_route(vendor_url: str, extra: str = "") -> str:
    return ("name: paid\nsteps:\n  - station: FakePhoneLookup\n"
            f"    settings: {{base_url: \"{vendor_url}\"}}\n{extra}")


def leads(n: int, name: str = "Ada") -> list[dict[str, str]]:
    return [{"id": f"L{i:04d}", "name": name} for i in range(n)]


def wait_calls(vendor: FakeVendor, calls: int, timeout: float = 60) -> None:
    """Wait until the vendor answered ``calls`` lookups (mid-run, to strike then)."""
    deadline = time.monotonic() + timeout
    while vendor.total("lookup") < calls and time.monotonic() < deadline:
        time.sleep(0.02)


def assert_each_bought_once(vendor: FakeVendor, n: int, got: dict[str, dict] | None = None) -> None:
    calls = vendor.calls["lookup"]
    never = sorted(set(f"L{i:04d}" for i in range(n)) - set(calls))
    assert not never, f"never bought: {[(lead, (got or {}).get(lead)) for lead in never][:3]}"
    repeated = {lead: c for lead, c in calls.items() if c != 1}
    assert not repeated, f"paid lookups bought more than once: {repeated}"


def test_two_workers_run_a_route_and_export_writes_it_like_run(fleet, vendor, tmp_path: Path) -> None:
    client, prefix = fleet
    rows = [*leads(20), {"id": "L0003", "name": "Ada"}]  # a repeated lead id: queued once, written twice
    run_id = enqueue(tmp_path, lookup_route(vendor.url), rows, prefix, cli=True)
    workers = [start_worker(prefix, "--concurrency", "4") for _ in range(2)]
    try:
        wait_finished(client, run_id, prefix, 60)
    finally:
        stop(workers)
    assert all(w.returncode == 0 for w in workers)
    st = status(run_id, prefix, cli=True)
    assert st["finished"] and st["done"] == 20 and st["queued"] == 0 and st["in_progress"] == 0
    assert st["succeeded"] == 20 and st["dead_lettered"] == 0 and st["duplicates"] == 0
    assert st["spent"] == pytest.approx(0.20)
    assert_each_bought_once(vendor, 20)
    out = tmp_path / "out.csv"
    done = subprocess.run([*WAYSTATION, "export", run_id, "-o", str(out), *fleet_args(prefix)], env=env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with open(out, newline="") as f:
        got = list(csv.DictReader(f))
    assert list(got[0]) == ["id", "name", "phone", "_lead_id", "_status", "_reason", "_cost"]
    assert [r["id"] for r in got] == [r["id"] for r in rows]  # one row per input row, input order
    assert {r["_status"] for r in got} == {"succeeded"}
    assert got[3]["phone"] and got[3] == got[-1]
    # the run is in the checkpoint store's run list, so `waystation report` shows it
    rep = subprocess.run([*WAYSTATION, "report", run_id, "--checkpoint", f"{REDIS_URL}?prefix={prefix}:ck",
                          "--json"], env=env(), capture_output=True, text=True, timeout=60)
    assert rep.returncode == 0, rep.stderr
    report = json.loads(rep.stdout)
    assert report["complete"] and report["stations"][0]["runs"] == 20


def test_every_enqueue_is_its_own_run_so_two_people_under_one_id_keep_their_data(fleet, vendor,
                                                                                  tmp_path: Path) -> None:
    """Issue #19: `1,Alice` then `1,Bob` in two enqueues: each gets their own result."""
    client, prefix = fleet
    route = lookup_route(vendor.url)
    worker = start_worker(prefix, "--concurrency", "2")
    try:
        first = enqueue(tmp_path, route, [{"id": "1", "name": "Alice", "email": "alice@example.com"}], prefix)
        wait_finished(client, first, prefix, 60)
        second = enqueue(tmp_path, route, [{"id": "1", "name": "Bob", "email": "bob@example.com"}], prefix)
        wait_finished(client, second, prefix, 60)
    finally:
        stop([worker])
    assert first != second
    alice, bob = results(client, first, prefix)["1"], results(client, second, prefix)["1"]
    assert (alice["data"]["name"], alice["data"]["email"]) == ("Alice", "alice@example.com")
    assert (bob["data"]["name"], bob["data"]["email"]) == ("Bob", "bob@example.com")
    assert vendor.calls["lookup"]["1"] == 2  # Bob's paid lookup was made for Bob, not skipped
    # an erasure request for Alice removes her result (and lead state), not Bob's
    gone = subprocess.run([*WAYSTATION, "forget", "--email", "alice@example.com", "--checkpoint",
                           f"{REDIS_URL}?prefix={prefix}:ck", "--json"], env=env(), capture_output=True, text=True,
                          timeout=60)
    assert gone.returncode == 0, gone.stderr
    assert "1" not in results(client, first, prefix) and results(client, second, prefix)["1"]["data"]["name"] == "Bob"
    assert any(e["where"].startswith("worker runs") and e["what"] == "results" and e["count"] == 1
               for e in json.loads(gone.stdout)), gone.stdout


@pytest.mark.slow
def test_a_sigkilled_worker_twice_every_lead_once_no_paid_step_rebought(fleet, vendor, tmp_path: Path) -> None:
    """(a) 3 workers, one SIGKILLed mid-run, a replacement started, then another SIGKILLed."""
    client, prefix = fleet
    n = 90
    vendor.delay = 0.05
    run_id = enqueue(tmp_path, lookup_route(vendor.url), leads(n), prefix)
    workers = [start_worker(prefix, "--concurrency", "4") for _ in range(3)]
    killed = 0
    try:
        for threshold in (n // 4, n // 2):
            wait_calls(vendor, threshold)
            victim = workers[killed % 3]
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            killed += 1
            workers[(killed - 1) % 3] = start_worker(prefix, "--concurrency", "4")
        wait_finished(client, run_id, prefix, 120)
    finally:
        stop(workers)
    assert killed == 2
    got = results(client, run_id, prefix)
    assert sorted(got) == [f"L{i:04d}" for i in range(n)]
    assert {r["status"] for r in got.values()} == {"succeeded"}
    assert counts(client, run_id, prefix).get("duplicates", 0) == 0  # no lead finished twice
    assert_each_bought_once(vendor, n)  # in-doubt calls were rechecked, not bought again
    assert status(run_id, prefix)["dead_lettered"] == 0


@pytest.mark.slow
def test_a_vendor_slower_than_the_heartbeat_and_a_shared_rate_limit_steal_nothing(fleet, vendor,
                                                                                    tmp_path: Path) -> None:
    """(b) every call takes 2.5 s (the heartbeat timeout is 1 s) and the shared limit (no `shared:`
    in the route: workers share it by default) makes leads wait for their slot."""
    client, prefix = fleet
    n = 12
    vendor.delay = 2.5
    route = lookup_route(vendor.url, "    rate_limit: {per_second: 4}\n    timeout: 30\n")
    run_id = enqueue(tmp_path, route, leads(n), prefix)
    workers = [start_worker(prefix, "--concurrency", "4") for _ in range(3)]
    try:
        wait_finished(client, run_id, prefix, 90)
    finally:
        stop(workers)
    assert len(results(client, run_id, prefix)) == n
    assert counts(client, run_id, prefix).get("duplicates", 0) == 0
    assert_each_bought_once(vendor, n)
    # the limit was the fleet's (in Redis), not each worker's (3 x 4/s: 5 calls within 1/3 s): 5
    # calls are 1 s apart at 4/s; allow for scheduling jitter on a loaded machine
    times = sorted(vendor.arrivals)
    assert min(b - a for a, b in zip(times, times[4:], strict=False)) >= 0.6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_server(port: int, data: Path) -> subprocess.Popen[bytes]:
    server = shutil.which("redis-server")
    assert server, "redis-server is needed for the restart test"
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
                             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    client.close()
    return proc


@pytest.mark.slow
def test_workers_survive_a_redis_restart_mid_run(vendor, tmp_path: Path) -> None:
    """(c) the test's own redis-server (AOF, fsync always) is SIGKILLed mid-run and restarted."""
    require_redis()
    import redis

    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    data = tmp_path / "redis"
    data.mkdir()
    server = _redis_server(port, data)
    client = redis.Redis.from_url(url)
    prefix = "wsw-restart"
    n = 60
    vendor.delay = 0.05
    workers: list[subprocess.Popen[str]] = []
    try:
        run_id = enqueue(tmp_path, lookup_route(vendor.url), leads(n), prefix, redis_url=url)
        workers = [start_worker(prefix, "--concurrency", "4", redis_url=url) for _ in range(2)]
        wait_calls(vendor, n // 3)
        server.send_signal(signal.SIGKILL)
        server.wait()
        time.sleep(2.0)
        server = _redis_server(port, data)
        wait_finished(client, run_id, prefix, 120)
        assert all(w.poll() is None for w in workers)  # they reconnected instead of dying
        got = results(client, run_id, prefix)
        assert sorted(got) == [f"L{i:04d}" for i in range(n)]
        assert counts(client, run_id, prefix).get("duplicates", 0) == 0
        assert_each_bought_once(vendor, n, got)
    finally:
        stop(workers)
        client.close()
        server.kill()
        server.wait()


@pytest.mark.slow
def test_poison_and_killer_leads_are_dead_lettered_alone_and_replay_dead_finishes_them(fleet, tmp_path: Path
                                                                                        ) -> None:
    """(d) a lead that always raises and a lead that kills its worker end dead-lettered (the first
    after its retries, with its error) and no innocent lead goes with them; (f) once the cause is
    gone, `replay-dead` finishes them."""
    client, prefix = fleet
    armed = tmp_path / "armed"
    armed.write_text("1")
    route = f"name: trap\nsteps:\n  - station: Trap\n    settings: {{armed: \"{armed}\"}}\n"
    rows = [{"id": f"I{i:02d}", "name": "innocent"} for i in range(16)]
    rows[3] = {"id": "P", "name": "poison"}
    rows[9] = {"id": "K", "name": "killer"}
    run_id = enqueue(tmp_path, route, rows, prefix)
    args = ("--concurrency", "4", "--max-retries", "2", "--max-crashes", "2")
    logs = tmp_path / "workers.log"
    workers = [start_worker(prefix, *args, log=logs) for _ in range(2)]

    def restart(i: int) -> subprocess.Popen[str]:  # as systemd would
        return start_worker(prefix, *args, log=logs)

    try:
        wait_finished(client, run_id, prefix, 120, workers, restart)
        st = status(run_id, prefix)
        assert st["dead_lettered"] == 2 and st["done"] == 14 and st["finished"]
        dead = {k.decode(): json.loads(v) for k, v in client.hgetall(f"{prefix}:run:{{{run_id}}}:dead").items()}
        assert set(dead) == {"P", "K"}  # no innocent lead went with them
        assert "poison lead: always raises" in dead["P"]["reason"] and dead["P"]["retries"] == 3
        assert "worker died 2 times" in dead["K"]["reason"]
        assert {r["status"] for r in results(client, run_id, prefix).values()} == {"succeeded"}
        # (f) the cause is fixed: replay the dead letters
        armed.unlink()
        replay = subprocess.run([*WAYSTATION, "queue", "replay-dead", run_id, *fleet_args(prefix)], env=env(),
                                capture_output=True, text=True, timeout=60)
        assert replay.returncode == 0, replay.stderr
        assert "replayed 2" in replay.stdout
        wait_finished(client, run_id, prefix, 60, workers, restart)
        st = status(run_id, prefix)
        assert st["done"] == 16 and st["dead_lettered"] == 0 and st["finished"]
        assert results(client, run_id, prefix)["P"]["data"]["trap"] == "ok"
    finally:
        stop(workers)


@pytest.mark.slow
def test_three_workers_never_spend_past_the_fleet_budget(fleet, vendor, tmp_path: Path) -> None:
    """(e) --budget-total $0.25 at $0.01 a lookup: 25 lookups in the whole fleet, no more."""
    client, prefix = fleet
    n = 60
    vendor.delay = 0.02
    run_id = enqueue(tmp_path, lookup_route(vendor.url), leads(n), prefix, budget_total=0.25)
    workers = [start_worker(prefix, "--concurrency", "8") for _ in range(3)]
    try:
        wait_finished(client, run_id, prefix, 90)
    finally:
        stop(workers)
    bought = vendor.total("lookup")
    # 25 unless a call failed (under load) after the last leads were refused: never more
    assert 20 <= bought <= 25
    got = results(client, run_id, prefix)
    st = status(run_id, prefix)
    # the leads the budget refused are held (parked for `queue retry-held`), never results
    assert len(got) + st["held"] == n and st["held"] >= n - 25 and st["finished"]
    assert sum(r["cost"] for r in got.values()) == pytest.approx(bought * 0.01)
    assert st["budget"]["spent"] == pytest.approx(bought * 0.01) and st["budget"]["reserved"] == 0
    assert st["budget"]["limit"] == pytest.approx(0.25)


@pytest.mark.slow
def test_sigterm_drains_and_hands_leads_back_health_reports_the_worker(fleet, vendor, tmp_path: Path) -> None:
    client, prefix = fleet
    n = 8
    vendor.delay = 1.0
    run_id = enqueue(tmp_path, lookup_route(vendor.url), leads(n), prefix)
    first = start_worker(prefix, "--concurrency", "4", "--grace", "0.2", "--worker-id", f"{prefix}-a")
    try:
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline:
            health = subprocess.run([*WAYSTATION, "worker", "--health", "--worker-id", f"{prefix}-a",
                                     *fleet_args(prefix)], env=env(), capture_output=True, text=True, timeout=60)
            if health.returncode == 0 and vendor.total("lookup") >= 2:
                break
            time.sleep(0.1)
        assert health is not None and health.returncode == 0, health.stderr if health else None
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
        assert first.returncode == 0
        gone = subprocess.run([*WAYSTATION, "worker", "--health", "--worker-id", f"{prefix}-a",
                               *fleet_args(prefix)], env=env(), capture_output=True, text=True, timeout=60)
        assert gone.returncode == 1
        second = start_worker(prefix, "--concurrency", "4")
        try:
            wait_finished(client, run_id, prefix, 60)
        finally:
            stop([second])
    finally:
        stop([first])
    assert len(results(client, run_id, prefix)) == n
    assert counts(client, run_id, prefix).get("duplicates", 0) == 0
    assert_each_bought_once(vendor, n)
