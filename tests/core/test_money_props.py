"""Property tests: money is booked exactly whatever goes wrong in a step.

Generated routes of paid and free toy stations; a toy vendor that bills each call at the moment it
goes out; random failures (unbilled, billed, cut off by the timeout), random exceptions,
nonsense answers and cancellations injected in every hook, failing checkpoint saves, random
numbers of leads in flight and random budgets. At the end of every example:

- no reservation is held, in any budget;
- the spend booked equals the sum of what the toy vendors billed;
- no budget is ever exceeded (spend <= limit, no overrun);
- the same for a budget shared with other processes (a worker fleet's), when there is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from waystation import Engine, Outcome, PluginHost, RetryPolicy, ServerError, Station, StepContext, hookimpl
from waystation.budget import Budget, to_micros
from waystation.errors import TransientError

HOOKS = ("before_lead", "after_lead", "before_step", "after_step", "on_step_error", "on_step_skipped",
         "on_retry", "on_cost", "price_step", "decide_stop")


class World:
    """What one example's toys share: the vendor's bill and the random source."""

    def __init__(self, rnd: random.Random, p_fail: float, p_hook: float, p_cancel: float, p_save: float) -> None:
        self.rnd = rnd
        self.billed_micros = 0
        self.p_fail = p_fail
        self.p_hook = p_hook
        self.p_cancel = p_cancel
        self.p_save = p_save
        self.budget_seen: list[Budget] = []


WORLD: World | None = None


def toy(name: str, cost: float, attempts: int) -> type[Station]:
    """A toy station whose vendor bills ``cost`` when a call goes out."""

    async def process(self: Station, ctx: StepContext) -> Outcome:
        w = WORLD
        assert w is not None
        action = w.rnd.random()
        if action < w.p_fail / 3:
            raise TransientError("vendor unreachable (nothing billed)")
        w.billed_micros += to_micros(cost)  # the call went out: billed, whatever happens next
        await asyncio.sleep(0)
        if action < 2 * w.p_fail / 3:
            raise ServerError("HTTP 503 for good").costing(cost)
        if action < w.p_fail:
            await asyncio.sleep(1)  # cut off by the step's timeout
        return Outcome({f"{name}_out": "x"}, cost=cost)

    return type(name, (Station,), {
        "name": name, "provides": {f"{name}_out": str}, "cost": cost, "timeout": 0.01,
        "retry": RetryPolicy(max_attempts=attempts, base_delay=0, jitter=0, max_delay=0),
        "process": process, "__doc__": "toy"})


class Chaos:
    """Implements every per-lead hook; each call may raise, answer nonsense or cancel."""

    def _maybe(self) -> Any:
        w = WORLD
        assert w is not None
        r = w.rnd.random()
        if r < w.p_cancel:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            return None
        if r < w.p_cancel + w.p_hook:
            raise RuntimeError("a plugin bug")
        return None

    @hookimpl
    def before_lead(self) -> None:
        self._maybe()

    @hookimpl
    def after_lead(self) -> None:
        self._maybe()

    @hookimpl
    def before_step(self) -> None:
        self._maybe()

    @hookimpl
    async def after_step(self) -> None:
        self._maybe()
        await asyncio.sleep(0)

    @hookimpl
    def on_step_error(self) -> None:
        self._maybe()

    @hookimpl
    def on_step_skipped(self) -> None:
        self._maybe()

    @hookimpl
    def on_retry(self) -> None:
        self._maybe()

    @hookimpl
    async def on_cost(self) -> None:
        await asyncio.sleep(0)
        self._maybe()

    @hookimpl
    def price_step(self, outcome: Outcome) -> Any:
        self._maybe()
        w = WORLD
        assert w is not None
        r = w.rnd.random()
        if r < 0.1:
            return -1.0  # nonsense: ignored, the outcome's cost is booked
        if r < 0.2:
            return "free"
        return None

    @hookimpl
    def decide_stop(self) -> Any:
        self._maybe()
        w = WORLD
        assert w is not None
        return "nonsense" if w.rnd.random() < 0.1 else None


class FakeShared:
    """A budget shared with other processes (like a worker fleet's), with awaits inside every
    operation so that cancellations can land in the middle of them."""

    def __init__(self, limit: float | None) -> None:
        self.limit = None if limit is None else to_micros(limit)
        self.held: dict[str, int] = {}
        self.spent = 0

    async def reserve(self, holder: str, amount: float) -> bool:
        await asyncio.sleep(0)
        micros = to_micros(amount)
        if self.limit is not None and self.spent + sum(self.held.values()) + micros > self.limit:
            return False
        assert holder not in self.held, f"{holder} reserved twice"
        self.held[holder] = micros
        return True

    async def settle(self, holder: str, amount: float) -> None:
        await asyncio.sleep(0)
        self.held.pop(holder)
        self.spent += to_micros(amount)

    async def release(self, holder: str) -> None:
        await asyncio.sleep(0)
        self.held.pop(holder)

    async def charge(self, amount: float) -> None:
        await asyncio.sleep(0)
        self.spent += to_micros(amount)

    async def charge_in_doubt(self, holder: str, amount: float) -> None:
        self.held.pop(holder, None)
        self.spent += to_micros(amount)


class FlakyStore:
    """An in-memory checkpointer whose saves fail now and then."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, str], dict[str, Any]] = {}

    async def load(self, run_id: str, lead_id: str) -> dict[str, Any] | None:
        return None

    async def save(self, run_id: str, lead_id: str, state: dict[str, Any]) -> None:
        w = WORLD
        assert w is not None
        await asyncio.sleep(0)
        if w.rnd.random() < w.p_save:
            raise OSError("disk full")
        self.states[(run_id, lead_id)] = state


step_st = st.tuples(st.sampled_from([0.0, 0.0, 0.01, 0.02, 0.05]), st.integers(1, 3), st.booleans())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(step_st, min_size=1, max_size=5),
    leads=st.integers(1, 10),
    inflight=st.integers(1, 6),
    lead_budget=st.one_of(st.none(), st.sampled_from([0.0, 0.01, 0.03, 0.1])),
    batch_budget=st.one_of(st.none(), st.sampled_from([0.0, 0.02, 0.05, 0.1, 0.3])),
    p_fail=st.sampled_from([0.0, 0.3, 0.7]),
    p_hook=st.sampled_from([0.0, 0.1, 0.4]),
    p_cancel=st.sampled_from([0.0, 0.0, 0.05, 0.2]),
    p_save=st.sampled_from([0.0, 0.0, 0.1]),
    shared_limit=st.one_of(st.none(), st.just(-1.0), st.sampled_from([0.0, 0.03, 0.2])),
    seed=st.integers(0, 2**32 - 1),
)
def test_money_is_booked_exactly(steps: list[tuple[float, int, bool]], leads: int, inflight: int,
                                 lead_budget: float | None, batch_budget: float | None, p_fail: float,
                                 p_hook: float, p_cancel: float, p_save: float, shared_limit: float | None,
                                 seed: int) -> None:
    global WORLD
    world = WORLD = World(random.Random(seed), p_fail, p_hook, p_cancel, p_save)
    stations = [toy(f"s{i}", cost, attempts) for i, (cost, attempts, _) in enumerate(steps)]
    lines = [f"name: props\n{'' if lead_budget is None else f'budget: {lead_budget}'}\nsteps:"]
    for i, (_, _, gate) in enumerate(steps):
        lines.append(f"  - station: s{i}\n    gate: {'true' if gate else 'false'}")
    text = "\n".join(lines) + "\n"
    host = PluginHost()
    host.add_stations(stations)
    host.pm.register(Chaos(), name="chaos")
    batch = Budget(batch_budget, name="batch")
    lead_budgets: list[Budget] = []
    # -1: no shared budget; None: an unlimited one; else its limit
    shared = None if shared_limit == -1.0 else FakeShared(shared_limit)

    async def main() -> None:
        engine = Engine.from_text(text, host=host, checkpointer=FlakyStore(), batch_budget=batch,
                                  shared_budget=shared)
        sem = asyncio.Semaphore(inflight)
        orig_run = engine.run

        async def one(i: int) -> None:
            async with sem:
                # a cancelled or broken lead: its money must still be counted
                with contextlib.suppress(BaseException):
                    await orig_run({"id": f"L{i}"})

        # remember every lead budget the engine makes (to check them too)
        import waystation.engine as eng

        real_budget = eng.Budget

        def spy(*a: Any, **kw: Any) -> Budget:
            b = real_budget(*a, **kw)
            lead_budgets.append(b)
            return b

        eng.Budget = spy  # type: ignore[misc]
        try:
            await asyncio.gather(*(one(i) for i in range(leads)), return_exceptions=True)
        finally:
            eng.Budget = real_budget  # type: ignore[misc]
            await engine.close()

    asyncio.run(main())
    assert batch.reservations == {}, batch.reservations
    assert batch.spent_micros == world.billed_micros
    assert batch.overrun_micros == 0
    if batch.limit is not None:
        assert batch.spent_micros <= batch.limit_micros
    assert sum(b.spent_micros for b in lead_budgets) == world.billed_micros
    if shared is not None:
        assert shared.held == {} and shared.spent == world.billed_micros
        if shared.limit is not None:
            assert shared.spent <= shared.limit
    for b in lead_budgets:
        assert b.reservations == {}
        assert b.overrun_micros == 0
        if b.limit is not None:
            assert b.spent_micros <= b.limit_micros
