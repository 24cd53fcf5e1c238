"""Every hook spec: documented with its signature, and exercised by a test named test_hook_<name>."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import waystation.hooks as hookspecs
from click.testing import CliRunner
from toys import make
from waystation import BreakerPolicy, Engine, PluginHost, RetryPolicy, Stop, hookimpl
from waystation.cli.main import cli

DOCS = Path(__file__).resolve().parents[2] / "docs" / "hooks.md"
SPECS = {n: f for n, f in vars(hookspecs).items() if callable(f) and hasattr(f, "waystation_spec")}


def test_every_hook_spec_is_documented_with_its_signature_and_tested() -> None:
    text = DOCS.read_text()
    tests = {n for n in dir(sys.modules[__name__]) if n.startswith("test_hook_")}
    for name, fn in SPECS.items():
        assert fn.__doc__ and len(fn.__doc__) > 40, f"hook {name} has no real docstring"
        signature = f"{name}{inspect.signature(fn)}".replace("'", "")
        assert signature in text, f"docs/hooks.md lacks the signature {signature}"
        assert f"test_hook_{name}" in tests, f"no test exercises hook {name}"


class Spy:
    """Implements the per-lead hooks and records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def before_lead(self, route: Any, ctx: Any) -> None:
        self.calls.append(("before_lead", ctx.lead_id))

    @hookimpl
    def after_lead(self, ctx: Any, result: Any) -> None:
        self.calls.append(("after_lead", result.status))

    @hookimpl
    def before_step(self, step: Any, ctx: Any) -> None:
        self.calls.append(("before_step", step.id))

    @hookimpl
    def after_step(self, step: Any, ctx: Any, outcome: Any) -> None:
        rec = ctx.steps[step.id]
        self.calls.append(("after_step", (step.id, dict(outcome.fields), rec.attempts, rec.duration >= 0)))

    @hookimpl
    def on_step_error(self, step: Any, error: BaseException) -> None:
        self.calls.append(("on_step_error", (step.id, type(error).__name__)))

    @hookimpl
    def on_step_skipped(self, step: Any, reason: str) -> None:
        self.calls.append(("on_step_skipped", (step.id, reason)))

    @hookimpl
    def on_retry(self, step: Any, attempt: int, error: BaseException, delay: float) -> None:
        self.calls.append(("on_retry", (step.id, attempt, type(error).__name__, delay >= 0)))

    @hookimpl
    def on_cost(self, step: Any, amount: float) -> None:
        self.calls.append(("on_cost", (step.id, amount)))

    def of(self, name: str) -> list[Any]:
        return [v for n, v in self.calls if n == name]


async def run_with(spy: object, text: str, stations: list, lead: dict | None = None, **kw: Any):
    async with Engine.from_text(text, stations, plugins=[spy], **kw) as engine:
        return await engine.run(lead or {"id": "L"})


def test_hook_register_stations() -> None:
    station = make("Registered", {"r": str})

    class Plugin:
        @hookimpl
        def register_stations(self) -> list:
            return [station]

    host = PluginHost()
    info = host.register_plugin(Plugin(), "my-plugin")
    assert host.get("Registered") is station and info.stations == ["Registered"]


def test_hook_register_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    @click.command("hello")
    def hello() -> None:
        """Say hello."""
        click.echo("hello from a plugin")

    class Plugin:
        @hookimpl
        def register_commands(self, cli: click.Group) -> None:
            cli.add_command(hello)

    host = PluginHost()
    host.register_plugin(Plugin(), "cmd-plugin")
    result = CliRunner().invoke(cli, ["hello"], obj={"host": host})
    assert result.exit_code == 0, result.output
    assert "hello from a plugin" in result.output
    cli.commands.pop("hello", None)
    type(cli)._plugins_added = False  # type: ignore[attr-defined]


def test_hook_plugin_api() -> None:
    class Old:
        @hookimpl
        def plugin_api(self) -> str:
            return "<1"

    class Current:
        @hookimpl
        def plugin_api(self) -> str:
            return ">=1,<2"

    host = PluginHost()
    assert host.register_plugin(Old(), "old").status == "incompatible"
    assert "plugin API 1.0" in (host.plugins[0].error or "")
    assert host.register_plugin(Current(), "current").status == "loaded"


async def test_hook_before_step() -> None:
    spy = Spy()
    await run_with(spy, "name: r\nsteps:\n  - station: A\n  - station: B\n    enabled: false\n",
                   [make("A", {"a": str}), make("B", {"b": str})])
    assert spy.of("before_step") == ["A"]  # not for a skipped step


async def test_hook_after_step() -> None:
    spy = Spy()
    await run_with(spy, "name: r\nsteps:\n  - station: A\n", [make("A", {"a": str})])
    assert spy.of("after_step") == [("A", {"a": "A:a"}, 1, True)]


async def test_after_step_sees_the_fields_in_the_outcome_not_yet_in_ctx_data() -> None:
    """As docs/hooks.md says: a step's fields are merged into ``ctx.data`` after ``after_step``;
    by ``after_lead`` they are there."""
    seen: dict[str, Any] = {}

    class Watch:
        @hookimpl
        def after_step(self, step: Any, ctx: Any, outcome: Any) -> None:
            seen["in_outcome"] = dict(outcome.fields)
            seen["in_data"] = "a" in ctx.data

        @hookimpl
        def after_lead(self, route: Any, ctx: Any) -> None:
            seen["route"] = type(route).__name__
            seen["at_end"] = ctx.data.get("a")

    await run_with(Watch(), "name: r\nsteps:\n  - station: A\n", [make("A", {"a": str})])
    assert seen == {"in_outcome": {"a": "A:a"}, "in_data": False, "route": "Plan", "at_end": "A:a"}


async def test_hook_on_step_error() -> None:
    spy = Spy()
    await run_with(spy, "name: r\nsteps:\n  - station: A\n", [make("A", {"a": str}, raises=KeyError("x"))])
    assert spy.of("on_step_error") == [("A", "KeyError")]


async def test_hook_on_step_skipped() -> None:
    spy = Spy()
    await run_with(spy, "name: r\nsteps:\n  - station: A\n    condition: nope exists\n", [make("A", {"a": str})])
    assert spy.of("on_step_skipped") == [("A", "condition")]


async def test_hook_on_retry() -> None:
    spy = Spy()
    flaky = make("Flaky", {"f": str}, raises=ConnectionError("reset"), retry=RetryPolicy(max_attempts=3))
    result = await run_with(spy, "name: r\nsteps:\n  - station: Flaky\n", [flaky])
    assert result.steps["Flaky"].attempts == 3
    assert spy.of("on_retry") == [("Flaky", 1, "ConnectionError", True), ("Flaky", 2, "ConnectionError", True)]


async def test_hook_on_breaker_change() -> None:
    changes: list[tuple[str, str, str, str | None]] = []

    class Watch:
        @hookimpl
        def on_breaker_change(self, station: str, old: str, new: str, cause: str | None) -> None:
            changes.append((station, old, new, cause))

    down = make("Down", {"d": str}, raises=ConnectionError("down"),
                breaker=BreakerPolicy(failure_threshold=2, reset_after=60))
    async with Engine.from_text("name: r\nsteps:\n  - station: Down\n", [down], plugins=[Watch()]) as engine:
        results = [await engine.run({"id": i}) for i in range(4)]
    assert changes == [("Down", "closed", "open", "failures")]
    assert [r.steps["Down"].reason for r in results] == [None, None, "breaker_open", "breaker_open"]


async def test_hook_price_step() -> None:
    class Price:
        @hookimpl
        def price_step(self, step: Any, ctx: Any, outcome: Any) -> float:
            return 0.003

    result = await run_with(Price(), "name: r\nsteps:\n  - station: A\n", [make("A", {"a": str}, cost=0.01)])
    assert result.total_cost == 0.003


async def test_hook_on_cost() -> None:
    spy = Spy()
    await run_with(spy, "name: r\nsteps:\n  - station: A\n", [make("A", {"a": str}, cost=0.25)])
    assert spy.of("on_cost") == [("A", 0.25)]


async def test_hook_decide_stop() -> None:
    class Escalate:
        @hookimpl
        def decide_stop(self, step: Any, outcome: Any) -> Any:
            if step.id == "A":
                return (Stop.FAIL, "escalated by policy")
            return Stop.CONTINUE  # cannot soften B's own SKIP_REMAINING

    a = make("A", {"a": str})
    b = make("B", {"b": str}, stop=Stop.SKIP_REMAINING, reason="gatekeep")
    result = await run_with(Escalate(), "name: r\nsteps:\n  - station: A\n", [a])
    assert (result.status, result.reason) == ("failed", "escalated by policy")
    result = await run_with(Escalate(), "name: r\nsteps:\n  - station: B\n  - station: C\n    after: B\n",
                            [b, make("C", {"c": str})])
    assert (result.status, result.reason) == ("stopped", "gatekeep")


async def test_hook_before_lead() -> None:
    spy = Spy()
    await run_with(spy, "name: r\nsteps:\n  - station: A\n", [make("A", {"a": str})], {"id": "L7"})
    assert spy.of("before_lead") == ["L7"]


async def test_hook_after_lead() -> None:
    spy = Spy()
    await run_with(spy, "name: r\nsteps:\n  - station: A\n", [make("A", {"a": str})])
    assert spy.of("after_lead") == ["succeeded"]
    assert [n for n, _ in spy.calls] == ["before_lead", "before_step", "on_cost", "after_step", "after_lead"]


class BatchSpy:
    """Implements the batch hooks (called by ``waystation.batch``)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def before_batch(self, route: Any) -> None:
        self.calls.append(("before_batch", route.name))

    @hookimpl
    def after_batch(self, route: Any, report: Any) -> None:
        self.calls.append(("after_batch", (route.name, report.leads["succeeded"], report.complete)))


async def _run_batch_with(spy: BatchSpy, tmp_path: Path) -> None:
    from waystation.batch import BatchConfig, run_batch

    route = tmp_path / "r.yaml"
    route.write_text("name: r\nsteps:\n  - station: A\n")
    leads = tmp_path / "leads.csv"
    leads.write_text("id,name\nL1,Ann\nL2,Bob\n")
    host = PluginHost()
    host.add_stations([make("A", {"a": str})])
    host.pm.register(spy)
    await run_batch(BatchConfig(route=route, input=leads, output=tmp_path / "out.csv", checkpoint="memory://"),
                    host)


async def test_hook_before_batch(tmp_path: Path) -> None:
    spy = BatchSpy()
    await _run_batch_with(spy, tmp_path)
    assert spy.calls[0] == ("before_batch", "r")


async def test_hook_after_batch(tmp_path: Path) -> None:
    spy = BatchSpy()
    await _run_batch_with(spy, tmp_path)
    assert spy.calls == [("before_batch", "r"), ("after_batch", ("r", 2, True))]



class Keeper:
    """A plugin that keeps personal data of its own (a cache) and erases it when asked."""

    def __init__(self) -> None:
        self.rows = {"L1": {"phone": "+14155550100"}, "L2": {"phone": "+12125550100"}}
        self.requests: list[Any] = []

    @hookimpl
    async def forget_person(self, request: Any) -> Any:
        from waystation.forget import Erasure

        self.requests.append(request)
        hits = [k for k, v in self.rows.items() if request.matches(k, v)]
        if not request.dry_run:
            for k in hits:
                del self.rows[k]
        return Erasure("keeper cache", "entries", len(hits))


class Broken:
    @hookimpl
    def forget_person(self) -> None:
        raise RuntimeError("cache offline")


async def test_hook_forget_person() -> None:
    from waystation.forget import Erasure, ForgetRequest, forget_person

    host = PluginHost()
    keeper = Keeper()
    host.pm.register(keeper)
    host.pm.register(Broken(), name="broken-cache")
    dry = ForgetRequest.build(phones=["(415) 555-0100"], checkpoint="memory://", dry_run=True)
    out = await forget_person(dry, host)
    assert Erasure("keeper cache", "entries", 1) in out and len(keeper.rows) == 2
    out = await forget_person(ForgetRequest.build(phones=["1-415-555-0100"], checkpoint="memory://"), host)
    assert Erasure("keeper cache", "entries", 1) in out and list(keeper.rows) == ["L2"]
    assert Erasure("checkpoints memory://", "lead states", 0) in out  # the core's own implementation
    assert Erasure("broken-cache", "error", -1, "RuntimeError: cache offline") in out
    assert keeper.requests[-1].phones == frozenset({"4155550100"})


async def test_hook_screen_step() -> None:
    import toys

    rec = toys.reset()

    class Screen:
        def __init__(self) -> None:
            self.seen: list[str] = []

        @hookimpl
        def screen_step(self, step: Any, data: Any) -> str | None:
            self.seen.append(step.id)
            return "blocked: test" if data.get("a") else None

    screen = Screen()
    stations = [make("A", {"a": str}), make("B", {"b": str}, requires=("a",), cost=0.01)]
    result = await run_with(screen, "name: r\nsteps:\n  - station: A\n  - station: B\n", stations)
    assert screen.seen == ["A", "B"]  # A passed the screen, B (paid) was refused before its call
    assert rec.calls == ["A"]
    assert result.status == "stopped" and result.reason == "blocked: test"
    assert result.steps["B"].status == "skipped" and result.steps["B"].reason == "screened"
    assert result.total_cost == 0


async def test_screen_that_raises_refuses_the_step() -> None:
    import toys

    rec = toys.reset()

    class Broken:
        @hookimpl
        def screen_step(self) -> None:
            raise RuntimeError("ledger unreadable")

    result = await run_with(Broken(), "name: r\nsteps:\n  - station: A\n", [make("A", {"a": str}, cost=0.01)])
    assert rec.calls == []
    assert result.status == "stopped" and "could not run" in (result.reason or "")
    assert "ledger unreadable" in (result.reason or "")
