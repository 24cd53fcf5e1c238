"""Hook implementations are called one by one: one plugin's error never reaches the others."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Any

import click
import toys
from click.testing import CliRunner
from toys import make
from waystation import BreakerPolicy, Engine, PluginHost, RetryPolicy, ServerError, hookimpl
from waystation.batch import BatchConfig, BatchRunner
from waystation.hookcall import HookCaller, call_each, hook_error_counts
from waystation.stores.memory import MemoryStore


class Boom:
    """Raises in every observer hook."""

    @hookimpl
    def after_step(self) -> None:
        raise RuntimeError("boom after_step")

    @hookimpl
    def before_lead(self) -> None:
        raise RuntimeError("boom before_lead")

    @hookimpl
    async def after_lead(self) -> None:
        raise RuntimeError("boom after_lead (async)")

    @hookimpl
    def on_breaker_change(self) -> None:
        raise RuntimeError("boom breaker")


class Counting:
    def __init__(self) -> None:
        self.after_steps = 0
        self.after_leads = 0
        self.breaker: list[str] = []

    @hookimpl
    def after_step(self, step: Any) -> None:
        self.after_steps += 1

    @hookimpl
    def after_lead(self) -> None:
        self.after_leads += 1

    @hookimpl
    def on_breaker_change(self, new: str) -> None:
        self.breaker.append(new)


async def test_a_raising_observer_never_silences_the_others_nor_the_lead() -> None:
    toys.reset()
    counting = Counting()
    host = PluginHost()
    host.add_stations([make("A"), make("B")])
    # registered after Counting, so pluggy calls Boom first: its error must not stop Counting
    host.pm.register(counting, name="counting")
    host.pm.register(Boom(), name="boom")
    before = hook_error_counts().get(("after_step", "boom"), 0)
    async with Engine.from_text("name: r\nsteps:\n  - station: A\n  - station: B\n", host=host) as engine:
        res = await engine.run({"id": "L1"})
    assert res.status == "succeeded"
    assert counting.after_steps == 2 and counting.after_leads == 1
    assert "hook after_step of plugin boom raised RuntimeError: boom after_step" in res.errors
    assert any("before_lead of plugin boom" in e for e in res.errors)
    assert any("after_lead of plugin boom" in e for e in res.errors)
    assert res.steps["A"].hook_errors == ["hook after_step of plugin boom raised RuntimeError: boom after_step"]
    assert hook_error_counts()[("after_step", "boom")] == before + 2


async def test_a_raising_on_breaker_change_hurts_no_one() -> None:
    toys.reset()
    counting = Counting()
    host = PluginHost()
    host.add_stations([make("V", raises=ServerError("down"), retry=RetryPolicy(max_attempts=1),
                            breaker=BreakerPolicy(failure_threshold=1, reset_after=60))])
    host.pm.register(Boom(), name="boom")
    host.pm.register(counting, name="counting")
    async with Engine.from_text("name: r\nsteps:\n  - station: V\n", host=host) as engine:
        res = await engine.run({"id": "L1"})
        await asyncio.sleep(0)
    assert res.steps["V"].status == "failed"
    assert counting.breaker == ["open"]


class BadPrice:
    @hookimpl
    def price_step(self) -> float:
        raise ValueError("rate card missing")


async def test_a_raising_price_step_falls_back_to_the_outcome_cost() -> None:
    toys.reset()
    host = PluginHost()
    host.add_stations([make("P", cost=0.02)])
    host.pm.register(BadPrice(), name="pricing")
    from waystation.budget import Budget

    batch = Budget(1.0)
    async with Engine.from_text("name: r\nsteps:\n  - station: P\n", host=host, batch_budget=batch) as engine:
        results = [await engine.run({"id": f"L{i}"}) for i in range(5)]
    assert all(r.status == "succeeded" for r in results)
    assert batch.spent == 0.10 and batch.reservations == {}
    assert results[0].steps["P"].hook_errors == [
        "hook price_step of plugin pricing raised ValueError: rate card missing"]


def test_observers_get_only_the_arguments_they_declare() -> None:
    seen: list[tuple[Any, ...]] = []

    class Obs:
        def on_cost(self, amount: float) -> None:
            seen.append((amount,))

        def after_lead(self, ctx: Any, result: Any, extra: int = 3) -> None:
            seen.append((ctx, result))

    caller = HookCaller(PluginHost().pm, [Obs()])
    asyncio.run(caller.notify("on_cost", step=1, ctx=2, amount=0.5))
    asyncio.run(caller.notify("after_lead", route=0, ctx="c", result="r"))
    assert seen == [(0.5,), ("c", "r")]


def test_register_commands_implementations_take_any_subset_and_fail_alone() -> None:
    class NoArgs:
        @hookimpl
        def register_commands(self) -> None:
            raise RuntimeError("cannot add")

    added: list[str] = []

    class WithCli:
        @hookimpl
        def register_commands(self, cli: click.Group) -> None:
            added.append(cli.name or "")

    host = PluginHost()
    host.pm.register(WithCli(), name="with")
    host.pm.register(NoArgs(), name="noargs")
    failures: list[str] = []
    call_each(host.pm, "register_commands", lambda f: failures.append(f.message), cli=click.Group("ws"))
    assert added == ["ws"]
    assert failures == ["hook register_commands of plugin noargs raised RuntimeError: cannot add"]
    assert CliRunner  # the CLI path is covered in test_hooks.test_hook_register_commands


def _write(path: Path, ids: list[str]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "name"])
        for i in ids:
            w.writerow([i, i])
    return path


async def test_two_batches_on_one_host_at_once_each_count_only_their_own_leads(tmp_path: Path) -> None:
    toys.reset()
    host = PluginHost()
    host.add_stations([make("Slow", sleep=0.001)])
    route = tmp_path / "r.yaml"
    route.write_text("name: r\nsteps:\n  - station: Slow\n")
    a = _write(tmp_path / "a.csv", [f"A{i}" for i in range(30)])
    b = _write(tmp_path / "b.csv", [f"B{i}" for i in range(7)])
    ra = BatchRunner(BatchConfig(route=route, input=a, output=tmp_path / "a.out.csv", concurrency=4), host,
                     store=MemoryStore())
    rb = BatchRunner(BatchConfig(route=route, input=b, output=tmp_path / "b.out.csv", concurrency=4), host,
                     store=MemoryStore())
    res_a, res_b = await asyncio.gather(ra.run(), rb.run())
    assert res_a.report.leads["succeeded"] == 30 and res_a.report.station("Slow").runs == 30
    assert res_b.report.leads["succeeded"] == 7 and res_b.report.station("Slow").runs == 7
    # and nothing of either run stayed registered on the shared plugin manager
    assert [n for n, _ in host.pm.list_name_plugin() if "batch" in str(n)] == []


def test_docs_say_for_every_hook_what_happens_when_it_raises() -> None:
    import waystation.hooks as specs

    text = (Path(__file__).resolve().parents[2] / "docs" / "hooks.md").read_text()
    names = [n for n, f in vars(specs).items() if callable(f) and hasattr(f, "waystation_spec")]
    for name in names:
        rows = [line for line in text.splitlines() if line.startswith(f"| `{name}` |")]
        assert len(rows) == 1, name
        cells = [c.strip() for c in rows[0].strip("|").split("|")]
        assert len(cells) == 4 and len(cells[3]) > 8, f"no 'if an implementation raises' for {name}"
