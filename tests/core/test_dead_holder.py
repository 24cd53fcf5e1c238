"""A budget reservation whose holder died is released, and its money counted once (#10).

Batch path: a real `waystation run` process takes a reservation for a paid step in flight against
a slow vendor on 127.0.0.1 and is killed with SIGKILL. Before the resume, the checkpoint store
holds the dead holder's intent (the restore path gives it back as a reservation); after
`run --resume` over the same store (SQLite, and Redis): nothing is reserved or in flight in the
checkpoints, the spend is what the vendor's own call log says (each call counted once), and the
lead in flight was not bought again when the vendor had answered before the kill, or bought
exactly once when it had not. The resume runs with a batch budget of exactly what the vendor
bills: a reservation left held, or a call counted twice, would leave a lead held (exit 4).

Worker path: two `waystation worker` processes share a run's fleet budget in Redis; the one with
a paid call in flight is SIGKILLed. Its reservation's lease runs out and the budget's Lua sweep
turns it into spend (in doubt) — nothing stays reserved; when the other worker resumes the lead,
the vendor's answer is rechecked, nothing is bought twice and the spend equals the vendor's bill.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakevendor import PRICES, WAYSTATION, FakeVendor, cli_env
from services import REDIS_URL, require_redis
from waystation.budget import Budget
from waystation.stores import budget_ledger, open_store

pytestmark = pytest.mark.slow

N = 6
PRICE = PRICES["lookup"]


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ck.db'}"
        return
    require_redis()
    prefix = f"wstest-holder-{uuid.uuid4().hex[:8]}"
    yield f"{REDIS_URL}?prefix={prefix}&ttl=600"
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


def write_inputs(tmp: Path, vendor_url: str, station_delay: float) -> tuple[Path, Path]:
    route = tmp / "paid.yaml"
    route.write_text("name: paid\nsteps:\n  - station: FakePhoneLookup\n"
                     f"    settings: {{base_url: '{vendor_url}', delay: {station_delay}}}\n")
    leads = tmp / "leads.csv"
    leads.write_text("id,name\n" + "".join(f"L{i:04d},Person {i}\n" for i in range(1, N + 1)))
    return route, leads


def ledger_of(store_url: str, run_id: str) -> Any:
    async def go() -> Any:
        store = open_store(store_url)
        try:
            return await budget_ledger(store, run_id)
        finally:
            await store.close()

    return asyncio.run(go())


def wait_for(what: str, check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.parametrize("answered", [True, False], ids=["vendor-answered", "call-never-sent"])
def test_a_killed_batchs_reservation_is_released_on_resume_and_counted_once(tmp_path: Path, store_url: str,
                                                                            answered: bool) -> None:
    with FakeVendor() as vendor:
        # answered: the vendor takes (and bills) the call, then is slow to reply; never sent: the
        # station waits before calling, its intent (the reservation) already saved
        route, leads = write_inputs(tmp_path, vendor.url, 0.0 if answered else 3.0)
        run_id = f"holder-{uuid.uuid4().hex[:8]}"
        args = [*WAYSTATION, "run", str(route), str(leads), "-o", str(tmp_path / "out.csv"), "--checkpoint",
                store_url, "--concurrency", "1", "--no-progress", "--report", str(tmp_path / "report.json")]
        proc = subprocess.Popen([*args, "--run-id", run_id, "--budget-total", f"{N * PRICE:.2f}"], env=cli_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            if answered:
                wait_for("two leads bought", lambda: vendor.total("lookup") >= 2)
                vendor.delay = 30.0  # the next call is billed on receipt and answered 30 s later
                before = vendor.total("lookup")
                wait_for("a call in flight", lambda: vendor.total("lookup") > before)
            else:
                def second_lead_in_flight() -> bool:
                    return any(i.lead_id == "L0002" for i in ledger_of(store_url, run_id).intents)

                wait_for("the second lead's intent", second_lead_in_flight)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        vendor.delay = 0.0
        calls = dict(vendor.calls["lookup"])
        in_flight = list(calls)[-1] if answered else "L0002"
        assert (in_flight in calls) is answered  # the vendor's log: did the call reach it?
        # the dead holder's reservation is in the store; the restore path gives it back as one
        ledger = ledger_of(store_url, run_id)
        assert [(i.lead_id, i.step_id, i.expired) for i in ledger.intents] == [
            (in_flight, "FakePhoneLookup", False)]
        restored = ledger.restore(Budget(N * PRICE))
        assert [r.holder for r in restored.reservations.values()] == [f"{in_flight}/FakePhoneLookup"]

        route.write_text(route.read_text().replace("delay: 3.0", "delay: 0.0"))
        resumed = subprocess.run([*args, "--resume", run_id, "--budget-total", f"{N * PRICE:.2f}"],
                                 env=cli_env(), capture_output=True, text=True, timeout=120)
        # exactly the vendor's bill fits: a leaked reservation or a double count would hold a lead
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    assert dict(vendor.calls["lookup"]) == {f"L{i:04d}": 1 for i in range(1, N + 1)}  # each bought once
    assert vendor.status_calls == 1  # the in-flight lead was rechecked, not bought blindly
    billed = vendor.billed()
    assert billed == pytest.approx(N * PRICE)
    after = ledger_of(store_url, run_id)
    assert after.intents == [] and after.total == pytest.approx(billed)  # nothing reserved, counted once
    assert after.restore(Budget(None)).reservations == {}
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["complete"] and report["leads"]["succeeded"] == N and report.get("overrun", 0) == 0
    assert report["total_cost"] == pytest.approx(billed)


async def fleet_status(prefix: str, run_id: str) -> dict[str, Any]:
    import redis.asyncio as aioredis
    from waystation.worker.fleet import FleetBudget

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        return await FleetBudget(client, prefix, run_id).status()
    finally:
        await client.aclose()


def lead_not_done(client: Any, base: str, lead_id: str) -> bool:
    return not client.hexists(f"{base}:results", lead_id)


@pytest.mark.redis
def test_a_killed_workers_reservation_expires_in_the_fleet_budget_and_is_counted_once(tmp_path: Path) -> None:
    require_redis()
    import redis
    from workerkit import enqueue, purge, results, start_worker, status, stop, wait_finished

    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"wsh-{uuid.uuid4().hex[:10]}"
    n = 12
    try:
        with FakeVendor() as vendor:
            route = ("name: paid\nsteps:\n  - station: FakePhoneLookup\n"
                     f"    settings: {{base_url: \"{vendor.url}\"}}\n")
            rows = [{"id": f"L{i:04d}", "name": "Ada"} for i in range(1, n + 1)]
            run_id = enqueue(tmp_path, route, rows, prefix, budget_total=n * PRICE)
            # a short lease (renewed every 0.5 s while the call runs), a heartbeat timeout longer
            # than it: the dead worker's lease is out well before its lead is handed on
            opts = ("--concurrency", "1", "--lease", "2", "--heartbeat-timeout", "8")
            workers = [start_worker(prefix, *opts, "--worker-id", f"w{k}") for k in (1, 2)]
            base = f"{prefix}:run:{{{run_id}}}"
            try:
                wait_for("three leads bought", lambda: vendor.total("lookup") >= 3)
                vendor.delay = 4.0  # calls from now on are billed on receipt and answered 4 s later
                before = vendor.total("lookup")
                wait_for("a call in flight", lambda: vendor.total("lookup") > before)
                holders = {k.decode(): v.decode() for k, v in client.hgetall(f"{base}:inflight").items()}
                res = {k.decode() for k in client.hkeys(f"{base}:res")}
                victim_lead = list(vendor.calls["lookup"])[-1]
                victim = workers[0] if holders.get(victim_lead) == "w1" else workers[1]
                assert f"{victim_lead}/FakePhoneLookup" in res  # its reservation is held in Redis
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=30)
                vendor.delay = 0.0
                holder = f"{victim_lead}/FakePhoneLookup"

                def swept() -> bool:  # any budget operation runs the Lua lease sweep first; so does this one
                    asyncio.run(fleet_status(prefix, run_id))
                    return bool(client.hexists(f"{base}:indoubt", holder))

                wait_for("the dead worker's lease to run out", swept, timeout=30)
                assert not client.hexists(f"{base}:res", holder)  # released: no longer reserved...
                assert lead_not_done(client, base, victim_lead)  # ...while its lead waits for redelivery
                wait_finished(client, run_id, prefix, 120)
                indoubt_left = client.hlen(f"{base}:indoubt")
            finally:
                stop(workers)
            st = status(run_id, prefix)
            got = results(client, run_id, prefix)
    finally:
        purge(client, prefix)
        client.close()
    assert dict(vendor.calls["lookup"]) == {f"L{i:04d}": 1 for i in range(1, n + 1)}  # nothing bought twice
    assert len(got) == n and {r["status"] for r in got.values()} == {"succeeded"} and st["held"] == 0
    b = st["budget"]
    # the sweep expired the dead worker's lease; the resumed lead took its in-doubt amount over
    assert b["reserved"] == 0 and b["expired_leases"] >= 1 and indoubt_left == 0
    assert b["spent"] == pytest.approx(vendor.billed())  # counted once, as the vendor bills
    assert sum(r["cost"] for r in got.values()) == pytest.approx(vendor.billed())
