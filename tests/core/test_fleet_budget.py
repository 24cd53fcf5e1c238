"""The fleet budget (one Lua script in the real Redis): never overshot under concurrency, leases of
a dead worker expire as in-doubt spend, and an in-doubt call is never counted twice."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from services import REDIS_URL, purge_prefix, require_redis
from waystation.worker.fleet import FleetBudget

pytestmark = pytest.mark.redis


@pytest.fixture
async def client():
    require_redis()
    import redis.asyncio as aioredis

    c = aioredis.Redis.from_url(REDIS_URL)
    prefix = f"wsfb-{uuid.uuid4().hex[:10]}"
    yield c, prefix
    await c.aclose()
    await purge_prefix(prefix)


async def test_many_workers_reserving_at_once_never_pass_the_limit(client) -> None:
    c, prefix = client
    budgets = [FleetBudget(c, prefix, "run") for _ in range(3)]  # three workers of one run
    await budgets[0].set_limit(0.25)
    oks = await asyncio.gather(*(budgets[i % 3].reserve(f"L{i}/s", 0.01) for i in range(100)))
    assert sum(oks) == 25
    st_ = await budgets[1].status()
    assert st_["reserved"] == pytest.approx(0.25) and st_["spent"] == 0
    for i, ok in enumerate(oks):
        if ok:
            await budgets[i % 3].settle(f"L{i}/s", 0.01)
    st_ = await budgets[2].status()
    assert (st_["spent"], st_["reserved"], st_["limit"]) == (pytest.approx(0.25), 0, pytest.approx(0.25))
    assert not await budgets[0].reserve("late/s", 0.01)


async def test_a_worker_cap_is_the_stricter_of_its_own_and_the_runs(client) -> None:
    c, prefix = client
    await FleetBudget(c, prefix, "run").set_limit(1.0)
    capped = FleetBudget(c, prefix, "run", cap=0.02)
    assert await capped.reserve("a/s", 0.01) and await capped.reserve("b/s", 0.01)
    assert not await capped.reserve("c/s", 0.01)
    assert await FleetBudget(c, prefix, "run").reserve("c/s", 0.01)  # another worker, without the cap


async def test_a_dead_workers_reservation_expires_as_spend_and_is_not_counted_twice(client) -> None:
    c, prefix = client
    dead = FleetBudget(c, prefix, "run", lease=0.2)
    await dead.set_limit(0.05)
    assert await dead.reserve("L1/lookup", 0.02)  # ...and the worker dies mid-call
    await asyncio.sleep(0.3)
    live = FleetBudget(c, prefix, "run")
    st_ = await live.status()
    assert st_["spent"] == pytest.approx(0.02) and st_["reserved"] == 0 and st_["expired_leases"] == 1
    # the lead is redelivered: the engine books the in-doubt call, which was counted already
    await live.charge_in_doubt("L1/lookup", 0.02)
    assert (await live.status())["spent"] == pytest.approx(0.02)
    # a reservation still live when its lead resumes elsewhere is turned into spend
    assert await live.reserve("L2/lookup", 0.02)
    await live.charge_in_doubt("L2/lookup", 0.02)
    st_ = await live.status()
    assert st_["spent"] == pytest.approx(0.04) and st_["reserved"] == 0


async def test_renewed_leases_do_not_expire_and_a_late_settle_corrects_the_in_doubt_amount(client) -> None:
    c, prefix = client
    fb = FleetBudget(c, prefix, "run", lease=0.3)
    assert await fb.reserve("L1/s", 0.05)
    for _ in range(4):
        await asyncio.sleep(0.15)
        await fb.renew()
    assert (await fb.status())["reserved"] == pytest.approx(0.05)
    frozen = FleetBudget(c, prefix, "run", lease=0.1)
    assert await frozen.reserve("L2/s", 0.05)
    await asyncio.sleep(0.2)  # a frozen process: its lease runs out, counted in doubt ($0.05)
    await frozen.settle("L2/s", 0.01)  # it wakes up and settles what the call really cost
    st_ = await fb.status()
    assert st_["spent"] == pytest.approx(0.01) and st_["reserved"] == pytest.approx(0.05)


ops = st.lists(st.tuples(st.sampled_from(["reserve", "settle", "release", "indoubt"]), st.integers(0, 7),
                         st.integers(1, 30)), min_size=1, max_size=40)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=ops, limit=st.integers(0, 100))
def test_any_sequence_keeps_spent_plus_reserved_within_the_limit(seq, limit) -> None:
    """Settling at most what was reserved, spent + reserved never exceeds the limit."""
    require_redis()
    import redis.asyncio as aioredis

    prefix = f"wsfb-{uuid.uuid4().hex[:10]}"

    async def go() -> None:
        c = aioredis.Redis.from_url(REDIS_URL)
        try:
            fb = FleetBudget(c, prefix, "run")
            await fb.set_limit(limit / 100)
            held: dict[str, int] = {}
            for op, who, cents in seq:
                holder = f"L{who}/s"
                if op == "reserve":
                    held.pop(holder, None)  # a holder reserving again replaces its reservation
                    if await fb.reserve(holder, cents / 100):
                        held[holder] = cents
                elif op == "settle" and holder in held:
                    await fb.settle(holder, min(cents, held.pop(holder)) / 100)
                elif op == "release" and holder in held:
                    await fb.release(holder)
                    held.pop(holder)
                elif op == "indoubt" and holder in held:
                    await fb.charge_in_doubt(holder, held.pop(holder) / 100)
                s = await fb.status()
                assert s["spent"] + s["reserved"] <= limit / 100 + 1e-9
                assert s["reserved"] == pytest.approx(sum(held.values()) / 100)
        finally:
            await c.aclose()
            await purge_prefix(prefix)

    asyncio.run(go())


async def test_the_engine_reserves_settles_and_releases_in_the_fleet_budget(client) -> None:
    from toys import make
    from waystation import Engine, StepError

    c, prefix = client
    fb = FleetBudget(c, prefix, "run")
    await fb.set_limit(0.03)
    ok = make("Paid", {"p": str}, cost=0.01)
    bad = make("Broken", {"b": str}, cost=0.01, raises=StepError("vendor down"))
    route = "name: r\nsteps:\n  - station: Paid\n  - station: Broken\n    retry: {max_attempts: 1}\n"
    engine = Engine.from_text(route, [ok, bad], shared_budget=fb)
    results = [await engine.run({"id": f"L{i}"}) for i in range(3)]
    st_ = await fb.status()
    # 3 paid calls fit; the broken calls' reservations were released, never left behind
    assert st_["spent"] == pytest.approx(0.03) and st_["reserved"] == 0
    assert [r.steps["Paid"].status for r in results] == ["succeeded"] * 3
    fourth = await engine.run({"id": "L3"})
    assert fourth.steps["Paid"].status == "skipped" and fourth.steps["Paid"].reason == "budget"
