"""One owner per reservation: billed failed attempts, overruns, cut-off calls, expired leases."""

from __future__ import annotations

import time

import toys
from toys import make
from waystation import Engine, PluginHost, RetryPolicy, ServerError
from waystation.budget import Budget
from waystation.stores import BudgetLedger, LiveIntent


def host(*stations: type) -> PluginHost:
    h = PluginHost()
    h.add_stations(list(stations))
    return h


async def test_billed_failed_attempts_reserve_before_each_attempt_and_stop_when_it_does_not_fit() -> None:
    toys.reset()
    paid = make("Paid", cost=0.01, raises=ServerError("HTTP 503").costing(0.01),
                retry=RetryPolicy(max_attempts=3, base_delay=0, jitter=0))
    async with Engine.from_text("name: m\nbudget: 0.01\nsteps:\n  - station: Paid\n", host=host(paid)) as e:
        r = await e.run({"id": "L1"})
    rec = r.steps["Paid"]
    assert toys.REC.calls.count("Paid") == 1 and r.total_cost == 0.01 and rec.overrun == 0
    assert rec.error == "the budget has no room for another attempt of Paid ($0.01) after attempt 1 failed: HTTP 503"
    toys.reset()  # with room for all three, all three are bought and booked
    async with Engine.from_text("name: m\nbudget: 0.05\nsteps:\n  - station: Paid\n", host=host(paid)) as e:
        r = await e.run({"id": "L2"})
    assert toys.REC.calls.count("Paid") == 3 and r.total_cost == 0.03


async def test_an_overrun_is_recorded_on_the_step_and_the_lead() -> None:
    toys.reset()
    cheap = make("Cheap", cost=0.01, actual_cost=0.03)
    batch = Budget(1.0)
    async with Engine.from_text("name: m\nsteps:\n  - station: Cheap\n", host=host(cheap), batch_budget=batch) as e:
        r = await e.run({"id": "L1"})
    assert r.steps["Cheap"].overrun == 0.02 and batch.overrun_micros == 20_000
    assert any("overrun" in err for err in r.errors)


async def test_a_call_cut_off_by_the_timeout_is_booked_at_its_reservation() -> None:
    toys.reset()
    slow = make("Slow", cost=0.02, sleep=1.0, timeout=0.01, retry=RetryPolicy(max_attempts=1))
    batch = Budget(1.0)
    async with Engine.from_text("name: m\nsteps:\n  - station: Slow\n", host=host(slow), batch_budget=batch) as e:
        r = await e.run({"id": "L1"})
    assert r.steps["Slow"].status == "failed" and r.steps["Slow"].error_category == "timeout"
    assert batch.spent == 0.02 and batch.reservations == {}


def test_restored_intents_carry_their_lease_and_expired_ones_count_as_spent() -> None:
    now = time.time()
    ledger = BudgetLedger(run_id="r", spent_micros=10_000, lease_seconds=60, intents=[
        LiveIntent(lead_id="a", step_id="s", micros=20_000, saved_at=now, expired=False),
        LiveIntent(lead_id="b", step_id="s", micros=30_000, saved_at=now - 3600, expired=True)])
    budget = ledger.restore(Budget(1.0))
    assert budget.spent_micros == 40_000  # settled + the expired intent
    assert [r.holder for r in budget.reservations.values()] == ["a/s"]
    assert budget.expire_leases(now + 61)  # the live one's holder died too
    assert budget.reservations == {} and budget.spent_micros == 60_000
    assert budget.expired_spent == {"b/s": 30_000, "a/s": 20_000}
