"""Fail closed on the worker path with the shipped stations and the real DNC sample (#10).

- The Telnyx gate's vendor (a fake on 127.0.0.1) answers 5xx for good: every lead a `waystation
  worker` runs is held at the gate — retried, then parked — nothing after the gate runs (no DNC
  verdict, nothing saved), `queue wait` exits 4; once the vendor is back, `queue retry-held`
  finishes them, and no DNC-listed lead ends `succeeded` or saved.
- The shipped FREE_ONLY route is enqueued where its DNC data is; a worker on a host without the
  data refuses the run naming the missing file and takes no lead; a worker that has it runs the
  run, and no DNC-listed lead ends `succeeded`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_failclosed import DNC, LEADS, ROOT, TELNYX_KEY, Telnyx, assert_no_listed_lead_passed, listed, rows, saved
from test_worker_cli import REDIS_URL, redis_or_skip

pytestmark = [pytest.mark.redis, pytest.mark.slow]
__all__ = ["listed"]  # the module fixture: the ids of the DNC-listed example leads


@pytest.fixture
def fleet() -> Iterator[tuple[object, list[str]]]:
    client = redis_or_skip()
    prefix = f"wstest-fc-{uuid.uuid4().hex[:8]}"
    yield client, ["--redis-url", REDIS_URL, "--prefix", prefix, "--queue", prefix]
    keys = list(client.scan_iter(f"{prefix}:*"))  # type: ignore[attr-defined]
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])  # type: ignore[attr-defined]


@pytest.fixture
def telnyx() -> Iterator[Telnyx]:
    import re

    t = Telnyx()
    t.server.start()
    t.server.expect_request(re.compile(r"^/v2/number_lookup/.+$")).respond_with_handler(t.handler)
    yield t
    t.server.clear()
    t.server.stop()


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "WAYSTATION_"))}
    for keep in ("WAYSTATION_SUPPRESS_LEDGER", "WAYSTATION_SUPPRESS_SECRET"):  # the test's own ledger
        if keep in os.environ:
            base[keep] = os.environ[keep]
    return {**base, **extra}


def ws(*args: str, cwd: Path, timeout: float = 180, **envs: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "waystation", *args], cwd=cwd, env=env(**envs), text=True,
                          capture_output=True, timeout=timeout)


def worker(fleet_args: list[str], cwd: Path, log: Path, *extra: str, **envs: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "waystation", "worker", *fleet_args, "--concurrency", "8",
                             "--heartbeat-timeout", "2", *extra], cwd=cwd, env=env(**envs), text=True,
                            stdout=subprocess.DEVNULL, stderr=open(log, "a"))


def stop(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_a_telnyx_gate_down_for_good_holds_every_lead_on_the_workers_until_retry_held(
        tmp_path: Path, fleet: tuple[object, list[str]], telnyx: Telnyx, listed: set[str]) -> None:
    _client, fargs = fleet
    url = telnyx.server.url_for("/v2")
    route = tmp_path / "gated.yaml"
    db = tmp_path / "saved.db"
    route.write_text(
        "name: GATED\nsteps:\n  - station: IdentityResolutionStation\n"
        f"  - station: TelnyxGatekeepStation\n    settings: {{base_url: '{url}', allow_hosts: ['127.0.0.1']}}\n"
        "    retry: {max_attempts: 2, base_delay: 0, jitter: 0}\n"
        "    breaker: {failure_threshold: 3, reset_after: 1}\n"
        "  - station: DNCScrubStation\n    settings:\n"
        f"      store: {tmp_path / 'dnc.sqlite'}\n      federal_files: [{DNC / 'federal'}]\n"
        f"      change_files: [{DNC / 'changes'}]\n      internal_files: [{DNC / 'internal.txt'}]\n"
        f"      litigator_files: [{DNC / 'litigators.txt'}]\n"
        "  - station: DatabaseSaveStation\n"
        f"    settings: {{url: 'sqlite:///{db}', table: leads}}\n")
    enq = ws("enqueue", str(route), str(LEADS), *fargs, "--json", cwd=tmp_path, TELNYX_API_KEY=TELNYX_KEY)
    assert enq.returncode == 0, enq.stderr
    run_id = json.loads(enq.stdout.strip().splitlines()[-1])["run_id"]
    log = tmp_path / "worker.log"
    # retries 1, 2 and 4 s apart: a retry after the vendor is back finds the breaker (reset 1 s) closed
    procs = [worker(fargs, tmp_path, log, "--held-retries", "3", "--held-backoff", "1",
                    TELNYX_API_KEY=TELNYX_KEY)]
    try:
        waited = ws("queue", "wait", run_id, *fargs, "--timeout", "240", "--interval", "0.5", "--json", cwd=tmp_path,
                    timeout=300)
        assert waited.returncode == 4, waited.stderr  # held>0: the run did not do what was asked
        st = json.loads(waited.stdout)
        n = json.loads(enq.stdout.strip().splitlines()[-1])["queued"]
        # every lead with a usable phone is held at the gate; the others fail closed at it
        assert st["held"] > 0 and st["succeeded"] == 0 and st["held"] + st["failed"] == n
        assert not saved(db), "nothing passed the gate, nothing was saved"
        out = tmp_path / "held.csv"
        exp = ws("export", run_id, "-o", str(out), *fargs, cwd=tmp_path)
        assert exp.returncode == 4, exp.stderr
        held = [r for r in rows(out) if r["_status"] == "held"]
        assert len(held) == st["held"]
        assert all(r["_reason"].startswith("gate TelnyxGatekeepStation did not pass") for r in held)
        assert not any(r.get("dnc_listed") for r in held)  # the DNC step never ran for them
        # the vendor is back: retry-held finishes them
        telnyx.status = 200
        again = ws("queue", "retry-held", run_id, *fargs, cwd=tmp_path)
        assert again.returncode == 0 and f"queued {st['held']} held lead(s)" in again.stdout, again.stderr
        waited = ws("queue", "wait", run_id, *fargs, "--timeout", "240", "--interval", "0.5", cwd=tmp_path,
                    timeout=300)
        assert waited.returncode == 0, waited.stdout + waited.stderr
    finally:
        stop(procs)
    out = tmp_path / "out.csv"
    exp = ws("export", run_id, "-o", str(out), *fargs, cwd=tmp_path)
    assert exp.returncode == 0, exp.stderr
    got = rows(out)
    assert not [r for r in got if r["_status"] == "held"] and [r for r in got if r["_status"] == "succeeded"]
    assert_no_listed_lead_passed(listed, out, db)


def test_a_worker_without_the_dnc_data_refuses_the_run_and_one_with_it_runs_it(
        tmp_path: Path, fleet: tuple[object, list[str]], listed: set[str]) -> None:
    _client, fargs = fleet
    shutil.copytree(ROOT / "routes", tmp_path / "routes")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    enq = ws("enqueue", "routes/free-only.yaml", "examples/leads.csv", *fargs, "--json", cwd=tmp_path)
    assert enq.returncode == 0, enq.stderr
    run_id = json.loads(enq.stdout.strip().splitlines()[-1])["run_id"]
    # this "host" lacks the DNC data the enqueueing host had
    (tmp_path / "examples" / "dnc").rename(tmp_path / "dnc-elsewhere")
    bare_log = tmp_path / "bare.log"
    procs = [worker(fargs, tmp_path, bare_log, "--worker-id", "bare", "--refuse-delay", "0.3")]
    try:
        waited = ws("queue", "wait", run_id, *fargs, "--timeout", "8", "--interval", "0.3", "--json", cwd=tmp_path)
        assert waited.returncode == 1, waited.stderr  # nothing could run here: not finished
        st = json.loads(waited.stdout)
        assert "worker bare refuses run" in waited.stderr and "dnc" in waited.stderr.lower()
        assert st["done"] == 0 and st["held"] == 0 and st["dead_lettered"] == 0
        assert "refuses run" in bare_log.read_text()
        (tmp_path / "dnc-elsewhere").rename(tmp_path / "examples" / "dnc")
        procs.append(worker(fargs, tmp_path, tmp_path / "good.log", "--worker-id", "good"))
        waited = ws("queue", "wait", run_id, *fargs, "--timeout", "240", "--interval", "0.5", cwd=tmp_path,
                    timeout=300)
        assert waited.returncode == 0, waited.stdout + waited.stderr
    finally:
        stop(procs)
    out = tmp_path / "out.csv"
    exp = ws("export", run_id, "-o", str(out), *fargs, cwd=tmp_path)
    assert exp.returncode == 0, exp.stderr
    got = rows(out)
    assert sum(1 for r in got if r.get("dnc_listed") == "true") == len(listed)
    assert_no_listed_lead_passed(listed, out, tmp_path / "out" / "leads.db")
