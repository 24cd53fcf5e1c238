"""Budgets: reserve before the call, settle after; never overshot, also under concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from waystation import Budget, Engine, Outcome, Station, StepContext, hookimpl
from waystation.budget import reserve_all, to_micros


def test_reserve_settle_release() -> None:
    b = Budget(1.0)
    r1 = b.reserve(0.6)
    assert r1 is not None and b.remaining == 0.4
    assert b.reserve(0.5) is None  # does not fit while 0.6 is reserved
    b.settle(r1, 0.0)  # billed only on a hit: a miss settles at 0
    assert b.spent == 0 and b.remaining == 1.0
    r2 = b.reserve(1.0)
    assert r2 is not None
    b.release(r2)
    assert b.remaining == 1.0


def test_overrun_is_recorded_never_hidden() -> None:
    b = Budget(1.0)
    r = b.reserve(0.1)
    assert r is not None
    assert b.settle(r, 0.3) == to_micros(0.2) and b.overrun_micros == to_micros(0.2)


def test_reserve_all_is_all_or_nothing() -> None:
    lead, batch = Budget(1.0), Budget(0.05)
    assert reserve_all([lead, batch], 0.1) is None
    assert lead.reserved == 0 and batch.reserved == 0
    hold = reserve_all([lead, batch], 0.05)
    assert hold is not None and lead.reserved == batch.reserved == 0.05


def test_expired_leases_are_reclaimed() -> None:
    b = Budget(1.0)
    r = b.reserve(0.5, lease_seconds=10)
    assert r is not None and r.lease_until is not None
    assert b.expire_leases(now=r.lease_until + 1) == [r]
    assert b.remaining == 1.0


def paid_station(name: str, declared: float, actual: float, delay: float, calls: list[str]) -> type[Station]:
    async def process(self: Station, ctx: StepContext) -> Outcome:
        calls.append(name)
        await asyncio.sleep(delay)
        return Outcome({name.lower(): "x"}, cost=actual)

    return type(name, (Station,), {"name": name, "provides": {name.lower(): str}, "cost": declared,
                                   "process": process, "__doc__": "paid toy"})


step_strategy = st.tuples(
    st.integers(min_value=1, max_value=500).map(lambda c: c / 1000),  # declared cost
    st.floats(min_value=0.0, max_value=1.0),  # actual as a fraction of declared (never more)
    st.sampled_from([0.0, 0.0005, 0.001]),  # latency: interleavings differ
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(step_strategy, min_size=1, max_size=8),
    lead_budget=st.integers(min_value=0, max_value=1500).map(lambda c: c / 1000),
    batch_budget=st.one_of(st.none(), st.integers(min_value=0, max_value=5000).map(lambda c: c / 1000)),
    leads=st.integers(min_value=1, max_value=30),
)
def test_budget_never_exceeded_with_parallel_paid_steps(steps, lead_budget, batch_budget, leads) -> None:
    calls: list[str] = []
    stations = [paid_station(f"S{i}", d, round(d * frac, 6), delay, calls)
                for i, (d, frac, delay) in enumerate(steps)]
    text = f"name: budget\nbudget: {lead_budget}\nsteps:\n" + "".join(f"  - station: S{i}\n" for i in range(len(steps)))
    spent_seen: list[float] = []

    class Watch:
        @hookimpl
        def on_cost(self, ctx: Any, amount: float) -> None:
            spent_seen.append(ctx.budget.spent)

    async def main() -> tuple[list[Any], Budget | None]:
        batch = Budget(batch_budget) if batch_budget is not None else None
        engine = Engine.from_text(text, stations, batch_budget=batch, plugins=[Watch()])
        async with engine:
            results = await asyncio.gather(*(engine.run({"id": i}) for i in range(leads)))
        return results, batch

    results, batch = asyncio.run(main())
    # every step of a route is in one level: all run concurrently
    for r in results:
        assert to_micros(r.total_cost) <= to_micros(lead_budget)
        assert all(s <= lead_budget + 1e-9 for s in spent_seen)
        for rec in r.steps.values():
            assert rec.status in ("succeeded", "skipped")
            if rec.status == "skipped":
                assert rec.reason == "budget"
    if batch is not None:
        assert batch.spent_micros <= to_micros(batch_budget) and batch.reserved_micros == 0
        assert batch.spent_micros == sum(to_micros(r.total_cost) for r in results)
    # no step was called without a reservation that fit
    declared = {f"S{i}": d for i, (d, _, _) in enumerate(steps)}
    per_lead_declared = sum(declared[c] for c in calls) / leads
    assert per_lead_declared <= lead_budget + 1e-9 or batch is not None


async def test_pricing_hook_overrides_the_outcome_cost_and_observers_see_it() -> None:
    calls: list[str] = []
    station = paid_station("Vendor", 0.10, 0.10, 0, calls)
    costs: list[float] = []

    class Negotiated:
        @hookimpl
        def price_step(self, step: Any) -> float | None:
            return 0.04 if step.station.name == "Vendor" else None

        @hookimpl
        def on_cost(self, amount: float) -> None:
            costs.append(amount)

    async with Engine.from_text("name: p\nbudget: 1\nsteps:\n  - station: Vendor\n", [station],
                                plugins=[Negotiated()]) as engine:
        result = await engine.run({"id": 1})
    assert result.total_cost == 0.04 and costs == [0.04] and result.costs == {"Vendor": 0.04}


async def test_route_cost_override_is_what_is_reserved() -> None:
    calls: list[str] = []
    station = paid_station("Vendor", 0.10, 0.01, 0, calls)
    text = "name: p\nbudget: 0.05\nsteps:\n  - station: Vendor\n    cost: 0.02\n"
    async with Engine.from_text(text, [station]) as engine:
        result = await engine.run({"id": 1})
    assert result.steps["Vendor"].status == "succeeded" and result.total_cost == 0.01


async def test_a_failed_call_that_still_cost_money_is_booked() -> None:
    from waystation import ServerError

    class HalfPaid(Station):
        """Pays a search, then its details call fails."""

        name = "HalfPaid"
        provides = {"x": str}
        cost = 0.02

        async def process(self, ctx: StepContext) -> Outcome:
            raise ServerError("details failed", status=503).costing(0.01)

    async with Engine.from_text("name: p\nbudget: 1\nsteps:\n  - station: HalfPaid\n", [HalfPaid]) as engine:
        result = await engine.run({"id": 1})
    rec = result.steps["HalfPaid"]
    assert rec.status == "failed" and rec.cost == 0.01 and result.total_cost == 0.01
