"""Gates fail closed: a gate that does not pass holds the lead; held leads are resumable."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import toys
from toys import make
from waystation import BreakerPolicy, Engine, PermanentError, PluginHost, RetryPolicy, ServerError, hookimpl
from waystation.batch import BatchConfig, BatchRunner
from waystation.stores.memory import MemoryStore


def gate_route(extra: str = "", gate_key: str = "") -> str:
    return ("name: gated\nsteps:\n  - station: Phone\n  - station: Gate\n" + extra + gate_key
            + "  - station: Save\n")


class Flaky:
    """A vendor that fails ``fail`` times with ``error`` then answers."""

    def __init__(self, fail: int, error: type[Exception] = ServerError) -> None:
        self.fail = fail
        self.error = error
        self.calls = 0


def stations(vendor: Flaky | None = None, *, gate: bool = True, requires: tuple[str, ...] = ("phone",),
             breaker: BreakerPolicy | None = None) -> list[type]:
    async def process(self: Any, ctx: Any) -> Any:
        from waystation import Outcome

        toys.REC.calls.append(ctx.step_id)
        if vendor is not None:
            vendor.calls += 1
            if vendor.calls <= vendor.fail:
                raise vendor.error("HTTP 503 from the vendor")
        return Outcome({"listed": False})

    gate_cls = make("Gate", {"listed": bool}, requires=requires, gate=gate, process=process,
                    retry=RetryPolicy(max_attempts=2, base_delay=0, jitter=0), breaker=breaker)
    return [make("Phone", {"phone": str}, value={"phone": "+14155550100"}), gate_cls,
            make("Save", {"saved": str}, value={"saved": "yes"})]


async def run(text: str, st: list[type], lead: dict[str, Any] | None = None, **kw: Any) -> Any:
    async with Engine.from_text(text, st, **kw) as engine:
        return await engine.run(lead or {"id": "L1"})


async def test_a_gate_that_passes_lets_the_lead_through() -> None:
    toys.reset()
    res = await run(gate_route(), stations())
    assert res.status == "succeeded"
    assert toys.REC.calls == ["Phone", "Gate", "Save"]


async def test_a_gate_failing_for_good_holds_the_lead_and_later_steps_never_run() -> None:
    toys.reset()
    res = await run(gate_route(), stations(Flaky(10)))
    assert res.status == "held"
    assert "gate Gate did not pass: server_error" in res.reason and "run --resume" in res.reason
    assert res.cause == "gate Gate: server_error"
    assert res.steps["Save"].status == "skipped" and res.steps["Save"].reason == "stopped"
    assert "Save" not in toys.REC.calls


async def test_a_permanent_gate_failure_fails_the_lead() -> None:
    toys.reset()
    res = await run(gate_route(), stations(Flaky(10, PermanentError)))
    assert res.status == "failed" and res.cause == "gate Gate: permanent"
    assert "Save" not in toys.REC.calls


async def test_a_gate_missing_its_input_fails_closed() -> None:
    toys.reset()
    res = await run(gate_route(), stations(requires=("phone", "zipcode")), lead={"id": "L1"},
                    input_fields=["id", "zipcode"])
    assert res.status == "failed"
    assert res.reason.startswith("gate Gate did not pass: missing_requirements (missing zipcode)")
    assert "Save" not in toys.REC.calls


async def test_not_a_gate_a_failure_lets_the_lead_go_on() -> None:
    toys.reset()
    res = await run(gate_route(), stations(Flaky(10), gate=False))
    assert res.status == "succeeded" and "Save" in toys.REC.calls


async def test_the_route_can_make_any_step_a_gate_or_not() -> None:
    toys.reset()
    res = await run(gate_route(gate_key="    gate: false\n"), stations(Flaky(10)))
    assert res.status == "succeeded"
    toys.reset()
    res = await run(gate_route(gate_key="    gate: true\n"), stations(Flaky(10), gate=False))
    assert res.status == "held"


async def test_a_gate_skipped_by_its_condition_or_disabled_passes() -> None:
    toys.reset()
    res = await run(gate_route(gate_key="    condition: \"phone not exists\"\n"), stations(Flaky(10)))
    assert res.status == "succeeded" and res.steps["Gate"].reason == "condition"
    toys.reset()
    res = await run(gate_route(gate_key="    enabled: false\n"), stations(Flaky(10)))
    assert res.status == "succeeded" and res.steps["Gate"].reason == "disabled"


async def test_a_gate_behind_an_open_breaker_holds_the_lead_and_resume_retries_it() -> None:
    toys.reset()
    vendor = Flaky(1)  # its first call fails (and opens the breaker), then it answers
    st = stations(vendor, breaker=BreakerPolicy(failure_threshold=1, reset_after=3600))
    store = MemoryStore()
    async with Engine.from_text(gate_route(), st, checkpointer=store, run_id="r1") as engine:
        first = await engine.run({"id": "L1"})
        second = await engine.run({"id": "L2"})
    assert first.status == "held" and first.cause == "gate Gate: server_error"
    assert second.status == "held" and second.cause == "gate Gate: breaker_open"
    assert second.steps["Gate"].reason == "breaker_open" and "Save" not in toys.REC.calls
    # later, the vendor is back: the same run resumed retries both held leads
    async with Engine.from_text(gate_route(), st, checkpointer=store, run_id="r1") as engine:
        again = await engine.run({"id": "L2"})
    assert again.status == "succeeded" and again.steps["Save"].status == "succeeded"


class RaisingStop:
    @hookimpl
    def decide_stop(self) -> None:
        raise RuntimeError("verdict plugin crashed")


async def test_a_gate_whose_decide_stop_hook_raises_holds_the_lead() -> None:
    toys.reset()
    res = await run(gate_route(), stations(), plugins=[RaisingStop()])
    assert res.status == "held" and res.cause == "gate Gate: decide_stop_error"
    assert any("verdict plugin crashed" in e for e in res.errors)
    assert "Save" not in toys.REC.calls


def _write(path: Path, n: int) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "name"])
        for i in range(n):
            w.writerow([f"L{i}", f"P{i}"])
    return path


async def test_batch_budget_holds_leads_and_resume_with_a_larger_budget_continues_them(tmp_path: Path) -> None:
    toys.reset()
    route = tmp_path / "r.yaml"
    route.write_text("name: paid\nsteps:\n  - station: Paid\n  - station: Save\n")
    host = PluginHost()
    host.add_stations([make("Paid", {"paid": str}, cost=0.01),
                       make("Save", {"saved": str}, value={"saved": "yes"})])
    inp = _write(tmp_path / "leads.csv", 10)
    store = MemoryStore()
    cfg = BatchConfig(route=route, input=inp, output=tmp_path / "out.csv", budget_total=0.04, concurrency=1,
                      run_id="b1")
    res = await BatchRunner(cfg, host, store=store).run()
    assert res.report.leads["succeeded"] == 4 and res.report.leads["held"] == 6
    assert res.report.causes == {"batch budget": 6}
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    held = [r for r in rows if r["_status"] == "held"]
    assert len(held) == 6 and "raise --budget-total" in held[0]["_reason"]
    rejects = (tmp_path / "out.rejects.jsonl").read_text().splitlines()
    assert len(rejects) == 6
    cfg2 = BatchConfig(route=route, input=inp, output=tmp_path / "out.csv", budget_total=0.10, concurrency=1,
                       resume="b1")
    res2 = await BatchRunner(cfg2, host, store=store).run()
    assert res2.report.leads["succeeded"] == 10 and res2.report.leads.get("held", 0) == 0
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert len(rows) == 10 and {r["_status"] for r in rows} == {"succeeded"}
    assert toys.REC.calls.count("Paid") == 10  # each lead bought once, never twice
    assert res2.report.total_cost == pytest.approx(0.10)
