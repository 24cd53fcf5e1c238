"""Run history: the conformance suite of both stores (SQLite, PostgreSQL) and the recorder."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from services import PG_URL, drop_pg_schema, require_postgres
from toys import make
from waystation.engine import Engine
from waystation.history import HistoryStore, RunHistory, StepHistory, merge_runs, open_history
from waystation.history.collector import HistoryRecorder


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def history(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HistoryStore]:
    if request.param == "sqlite":
        store = open_history(f"sqlite:///{tmp_path / 'h.db'}")
        yield store
        await store.close()
    else:
        require_postgres()
        schema = f"wstest_{uuid.uuid4().hex[:10]}"
        store = open_history(f"{PG_URL}?schema={schema}")
        yield store
        await store.close()
        drop_pg_schema(schema)


def seg(run_id: str, segment: str, route: str = "R", at: float = 100.0, runs: int = 10, hits: int = 6,
        cost: float = 0.1) -> RunHistory:
    step = StepHistory(step="a", station="A", paid=True, runs=runs, succeeded=runs, hits=hits,
                       misses=runs - hits, field_hits={"phone": hits}, patterns={"phone": hits, "": runs - hits},
                       cost=cost, latency={100: runs})
    return RunHistory(run_id=run_id, segment=segment, route=route, input_name="in.csv", input_size=123,
                      started_at=at, leads={"succeeded": runs}, total_cost=cost, steps=[step])


async def test_record_and_read_back(history: HistoryStore) -> None:
    await history.record(seg("r1", "main"))
    got = await history.run("r1")
    assert got is not None
    assert got.route == "R" and got.input_name == "in.csv" and got.input_size == 123
    assert got.step("a").hits == 6 and got.step("a").patterns == {"phone": 6, "": 4}
    assert got.step("a").latency_p50 is not None
    assert await history.run("nope") is None


async def test_segments_replace_themselves_and_merge(history: HistoryStore) -> None:
    await history.record(seg("q", "w1", runs=5, hits=1, cost=0.05))
    await history.record(seg("q", "w1", runs=10, hits=6, cost=0.1))  # a later snapshot replaces it
    await history.record(seg("q", "w2", runs=20, hits=10, cost=0.2, at=90.0))
    got = await history.run("q")
    assert got is not None and got.segments == 2
    a = got.step("a")
    assert (a.runs, a.hits, a.field_hits["phone"], a.patterns[""]) == (30, 16, 16, 14)
    assert got.total_cost == pytest.approx(0.3)
    assert got.started_at == 90.0 and got.leads == {"succeeded": 30}


async def test_runs_newest_first_by_route(history: HistoryStore) -> None:
    await history.record(seg("old", "main", at=1.0))
    await history.record(seg("new", "main", at=3.0))
    await history.record(seg("other", "main", route="S", at=2.0))
    assert [r.run_id for r in await history.runs()] == ["new", "other", "old"]
    assert [r.run_id for r in await history.runs(route="R")] == ["new", "old"]
    assert [r.run_id for r in await history.runs(limit=1)] == ["new"]
    assert await history.delete("new") == 1
    assert [r.run_id for r in await history.runs(route="R")] == ["old"]


async def test_estimates_latest_before(history: HistoryStore) -> None:
    assert await history.estimate_for("R", "k") is None
    await history.save_estimate("R", "k", {"n": 1}, at=10.0)
    await history.save_estimate("R", "k", {"n": 2}, at=20.0)
    await history.save_estimate("R", "other", {"n": 3}, at=30.0)
    assert await history.estimate_for("R", "k") == {"n": 2}
    assert await history.estimate_for("R", "k", before=15.0) == {"n": 1}
    assert await history.estimate_for("S", "k") is None


def test_merge_needs_a_segment() -> None:
    with pytest.raises(ValueError):
        merge_runs([])


async def test_recorder_counts_hits_per_field_patterns_errors_and_skips(tmp_path: Path) -> None:
    both = make("Both", {"phone": str, "email": str}, value={"phone": "+14155550100", "email": None}, cost=0.01)
    boom = make("Boom", {"x": str}, raises=TimeoutError("slow"))
    never = make("Never", {"y": str})
    route = """
name: R
steps:
  - station: Both
  - station: Boom
  - station: Never
    condition: zip exists
"""
    engine = Engine.from_text(route, [both, boom, never], run_id="run-1")
    store = open_history(f"sqlite:///{tmp_path / 'h.db'}")
    rec = HistoryRecorder(store, engine.plan, "run-1", input_name="x.csv", input_size=9)
    engine.host.pm.register(rec)
    engine.refresh_hooks()
    async with engine:
        for i in range(3):
            await engine.run({"id": f"L{i}"})
    other = Engine.from_text(route, [both, boom, never], host=engine.host, run_id="another-run")
    async with other:  # another run's engine on the same plugin manager: not counted
        await other.run({"id": "X"})
    snap = await rec.flush(final=True)
    got = await store.run("run-1")
    await store.close()
    assert got is not None and got.finished_at is not None
    assert got.model_dump(exclude={"segments"}) == snap.model_dump(exclude={"segments"})
    b, x, n = got.step("Both"), got.step("Boom"), got.step("Never")
    assert (b.runs, b.hits, b.field_hits, b.patterns, b.cost) == (3, 3, {"phone": 3}, {"phone": 3}, 0.03)
    assert (x.runs, x.failed, x.hits) == (3, 3, 0) and x.errors == {"timeout": 3}
    assert n.skipped == {"condition": 3} and n.runs == 0
    assert got.leads == {"succeeded": 3}
