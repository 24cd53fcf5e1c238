"""Tampered checkpoints: each saved state in ``checkpoints/`` is written raw into a real SQLite
store, read back through the store, and rejected with its exact reason (``expected.json``); the
budget ledger never credits a tampered spend."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, get_args

import pytest
from waystation.budget import Budget
from waystation.result import LeadStatus
from waystation.saved import check_queued_lead, check_state
from waystation.stores import budget_ledger, open_store

HERE = Path(__file__).parent / "checkpoints"
EXPECTED: dict[str, str] = json.loads((HERE / "expected.json").read_text())


def expected(name: str) -> str:
    return EXPECTED[name].replace("{statuses}", ", ".join(sorted(get_args(LeadStatus))))


async def write_raw(url: str, run_id: str, states: dict[str, str]) -> None:
    """Save through the store (so its schema exists), then overwrite the rows with raw text."""
    store = open_store(url)
    try:
        for lead_id in states:
            await store.save(run_id, lead_id, {"lead_id": lead_id, "route": "r", "input": {}, "steps": {},
                                               "status": "running"})
    finally:
        await store.close()
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        for lead_id, text in states.items():
            conn.execute("UPDATE lead_state SET state = ? WHERE run_id = ? AND lead_id = ?", (text, run_id, lead_id))


@pytest.mark.parametrize("name", sorted(p.name for p in HERE.glob("*.json") if p.name != "expected.json"))
async def test_a_tampered_state_is_rejected_with_its_reason(tmp_path: Path, name: str) -> None:
    url = f"sqlite:///{tmp_path / 'ck.db'}"
    await write_raw(url, "run-1", {"L1": (HERE / name).read_text()})
    store = open_store(url)
    try:
        state = await store.load("run-1", "L1")
    finally:
        await store.close()
    assert check_state(state) == expected(name)


async def test_the_ledger_never_credits_a_negative_spend(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ck.db'}"
    good = json.dumps({"lead_id": "L2", "route": "r", "input": {}, "steps": {}, "spent_micros": 250_000,
                       "status": "succeeded", "saved_at": time.time()})
    await write_raw(url, "run-1", {"L1": (HERE / "negative-spend.json").read_text(), "L2": good,
                                   "L3": (HERE / "steps-list.json").read_text()})
    store = open_store(url)
    try:
        ledger = await budget_ledger(store, "run-1")
    finally:
        await store.close()
    # L3's (positive) spend is counted though its state is rejected: a spend may be real, a credit never
    assert ledger.spent_micros == 250_000 + 10_000
    assert ledger.rejected == ["L1: spent_micros must be >= 0, not -5000000",
                               "L1: steps must be an object of step records, not list"]
    budget = ledger.restore(Budget(1.0, name="batch"))
    assert budget.remaining <= 1.0 - 0.26 + 1e-9  # never more than the $1 it started with


@pytest.mark.parametrize(("lead", "reason"), [
    ({"id": "1", "name": "Ann"}, None),
    (["1", "Ann"], "a queued lead must be a JSON object, not list"),
    ({"id": {"$gt": ""}}, "field 'id' must be text, a number, true/false or null"),
    ({"x": float("inf")}, "field 'x' is not a finite number"),
])
def test_queued_leads_are_checked(lead: Any, reason: str | None) -> None:
    assert check_queued_lead(lead) == reason
