"""A saved state is reused only for the same lead: the same id *and* the same input content.

Enqueue ``1,Alice`` then ``1,Bob`` in one run: Bob gets his own result, never Alice's name or
paid lookups; a batch file with two people under one id gives each their own row; a tampered
saved state fails its lead visibly (input kept, nothing called) and the batch goes on.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, ClassVar

from waystation import Engine, Outcome, PluginHost, Station, StepContext
from waystation.batch import BatchConfig, BatchRunner
from waystation.stores.memory import MemoryStore

ROUTE = "name: r\nsteps: [{station: Lookup}]\n"


class Lookup(Station):
    """A paid lookup that finds an e-mail for the lead's name."""

    name = "Lookup"
    requires = ("first_name",)
    provides: ClassVar[dict[str, Any]] = {"email": str}
    cost = 0.01
    calls: ClassVar[list[str]] = []

    async def process(self, ctx: StepContext) -> Outcome:
        Lookup.calls.append(ctx.data["first_name"])
        return Outcome({"email": f"{ctx.data['first_name'].lower()}@example.org"}, cost=0.01)


async def test_another_person_under_the_same_id_never_inherits_the_saved_state() -> None:
    Lookup.calls = []
    store = MemoryStore()
    async with Engine.from_text(ROUTE, [Lookup], checkpointer=store, run_id="stream") as engine:
        alice = await engine.run({"id": "1", "first_name": "Alice"})
        again = await engine.run({"id": "1", "first_name": "Alice"})
        bob = await engine.run({"id": "1", "first_name": "Bob"})
    assert alice.data["email"] == again.data["email"] == "alice@example.org"
    assert bob.data == {"id": "1", "first_name": "Bob", "email": "bob@example.org"}
    assert Lookup.calls == ["Alice", "Bob"]  # Alice's rerun reused her state; Bob paid for his own
    assert bob.total_cost == 0.01


async def test_a_tampered_state_fails_the_lead_and_keeps_its_input() -> None:
    Lookup.calls = []
    store = MemoryStore()
    async with Engine.from_text(ROUTE, [Lookup], checkpointer=store, run_id="r") as engine:
        await engine.run({"id": "1", "first_name": "Alice"})
        state = await store.load("r", "1")
        assert state is not None
        await store.save("r", "1", {**state, "spent_micros": -5_000_000})
        result = await engine.run({"id": "1", "first_name": "Alice"})
    assert result.status == "failed"
    assert result.reason == "saved state rejected: spent_micros must be >= 0, not -5000000"
    assert result.data == {"id": "1", "first_name": "Alice"} and result.total_cost == 0
    assert Lookup.calls == ["Alice"]


def batch_files(tmp_path: Path, leads: str) -> tuple[Path, Path, PluginHost, Path]:
    """The route, the input file (``leads``: CSV), a host with Lookup, the output path."""
    Lookup.calls = []
    route = tmp_path / "r.yaml"
    route.write_text(ROUTE)
    inp = tmp_path / "in.csv"
    inp.write_text(leads)
    host = PluginHost()
    host.add_stations([Lookup])
    return route, inp, host, tmp_path / "out.csv"


async def test_a_batch_with_two_people_under_one_id_gives_each_their_own_row(tmp_path: Path) -> None:
    route, inp, host, out = batch_files(tmp_path, "id,first_name\n1,Alice\n1,Bob\n1,Alice\n2,Cy\n")
    result = await BatchRunner(BatchConfig(route=route, input=inp, output=out, checkpoint="memory://",
                                           concurrency=8), host).run()
    assert result.exit_code == 0
    with out.open(newline="") as f:
        rows = [(r["first_name"], r["email"]) for r in csv.DictReader(f)]
    assert rows == [("Alice", "alice@example.org"), ("Bob", "bob@example.org"), ("Alice", "alice@example.org"),
                    ("Cy", "cy@example.org")]
    assert sorted(Lookup.calls) in (["Alice", "Bob", "Cy"], ["Alice", "Alice", "Bob", "Cy"])


async def test_a_resumed_batch_fails_tampered_leads_and_goes_on(tmp_path: Path) -> None:
    route, inp, host, out = batch_files(tmp_path, "id,first_name\nL1,Ada\nL2,Bob\nL3,Cy\n")
    url = f"sqlite:///{tmp_path / 'ck.db'}"
    first = await BatchRunner(BatchConfig(route=route, input=inp, output=out, checkpoint=url, run_id="run-1",
                                          budget_total=1.0), host).run()
    assert first.exit_code == 0 and len(Lookup.calls) == 3
    from waystation.stores import open_store

    store = open_store(url)  # someone edits the store: a negative spend, an empty list of steps
    try:
        l1, l2 = await store.load("run-1", "L1"), await store.load("run-1", "L2")
        assert l1 is not None and l2 is not None
        await store.save("run-1", "L1", {**l1, "spent_micros": -5_000_000})
        await store.save("run-1", "L2", {**l2, "steps": []})
    finally:
        await store.close()
    out.unlink()  # the output is rewritten from the checkpoints on resume
    errors: list[str] = []
    again = await BatchRunner(BatchConfig(route=route, input=inp, output=out, checkpoint=url, resume="run-1",
                                          budget_total=1.0), host, err=errors.append).run()
    assert again.exit_code == 0
    assert len(Lookup.calls) == 3  # nothing bought again, nothing trusted
    with out.open(newline="") as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    assert (rows["L1"]["first_name"], rows["L1"]["_status"]) == ("Ada", "failed")
    assert rows["L1"]["_reason"] == "saved state rejected: spent_micros must be >= 0, not -5000000"
    assert rows["L2"]["_reason"] == "saved state rejected: steps must be an object of step records, not list"
    assert (rows["L3"]["email"], rows["L3"]["_status"]) == ("cy@example.org", "succeeded")
    assert any("spent_micros must be >= 0" in e for e in errors)
    rejects = [json.loads(line) for line in (tmp_path / "out.rejects.jsonl").read_text().splitlines()]
    assert {r["lead_id"] for r in rejects} == {"L1", "L2"}
