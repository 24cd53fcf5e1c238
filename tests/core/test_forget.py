"""``waystation forget``: a person's lead states erased from the checkpoint store (memory, SQLite,
Redis), matched by lead id, phone (any format) or e-mail, in every run; ``--dry-run`` removes
nothing; the command reports what it removed from where."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from toys import make
from waystation import Engine, PluginHost
from waystation.cli.main import run_cli
from waystation.forget import ForgetRequest, forget_person, normalize_phone
from waystation.stores import open_store

ROUTE = "name: r\nsteps: [{station: Finder}]\n"
PEOPLE = [
    {"id": "L1", "first_name": "Ada", "phone": "+14155550100", "email": "ada@example.org"},
    {"id": "L2", "first_name": "Bob", "phone": "(212) 555-0199", "email": "BOB@example.org"},
    {"id": "L3", "first_name": "Cy"},  # its phone only comes from a station's outcome
]


def finder() -> Any:
    return make("Finder", {"found_phones": list[str]}, value={"found_phones": ["646-555-0142"]})


async def fill(url: str) -> None:
    store = open_store(url)
    try:
        for run_id in ("run-a", "run-b"):
            async with Engine.from_text(ROUTE, [finder()], checkpointer=store, run_id=run_id) as engine:
                for lead in PEOPLE:
                    await engine.run(lead)
    finally:
        await store.close()


async def remaining(url: str) -> dict[str, list[str]]:
    store = open_store(url)
    try:
        return {run: sorted([s["lead_id"] async for s in store.iter_states(run)]) for run in ("run-a", "run-b")}
    finally:
        await store.close()


def test_normalize_phone() -> None:
    assert {normalize_phone(p) for p in ("+1 415 555 0100", "1-415-555-0100", "(415) 555-0100", 4155550100)} \
        == {"4155550100"}
    assert normalize_phone("12") is None


@pytest.mark.parametrize("store_url", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
async def test_forget_erases_the_person_from_every_run(store_url: str) -> None:
    await fill(store_url)
    host = PluginHost()
    everyone = {"run-a": ["L1", "L2", "L3"], "run-b": ["L1", "L2", "L3"]}
    dry = await forget_person(ForgetRequest.build(lead_ids=["L1"], checkpoint=store_url, dry_run=True), host)
    # (the suppression ledger reports its own row: see test_suppress.py)
    assert [(e.what, e.count, e.note) for e in dry if e.what == "lead states"] == [("lead states", 2, "in 2 run(s)")]
    assert await remaining(store_url) == everyone

    by_id = await forget_person(ForgetRequest.build(lead_ids=["L1"], checkpoint=store_url), host)
    assert [(e.what, e.count) for e in by_id if e.what == "lead states"] == [("lead states", 2)]
    by_email = await forget_person(ForgetRequest.build(emails=["bob@EXAMPLE.org"], checkpoint=store_url), host)
    assert [e.count for e in by_email if e.what == "lead states"] == [2]
    by_found_phone = await forget_person(ForgetRequest.build(phones=["+1 646 555 0142"], checkpoint=store_url), host)
    assert [e.count for e in by_found_phone if e.what == "lead states"] == [2]  # found in an outcome, not the input
    assert await remaining(store_url) == {"run-a": [], "run-b": []}


@pytest.mark.parametrize("store_url", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
async def test_forget_command_reports_what_it_removed(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    await fill(store_url)
    code = await asyncio.to_thread(run_cli, ["forget", "--phone", "415.555.0100", "--email", "bob@example.org",
                                             "--checkpoint", store_url, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    rows = [r for r in json.loads(out.out) if r["what"] == "lead states"]  # (plugins may report theirs too)
    assert rows == [{"where": f"checkpoints {store_url}", "what": "lead states", "count": 4, "note": "in 2 run(s)"}]
    assert await remaining(store_url) == {"run-a": ["L3"], "run-b": ["L3"]}
    # again: nothing left, and that is not an error
    assert await asyncio.to_thread(run_cli, ["forget", "--phone", "415.555.0100", "--checkpoint", store_url,
                                             "--format", "plain"]) == 0
    assert "lead states  0" in capsys.readouterr().out


def test_forget_needs_a_person(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["forget", "--checkpoint", f"sqlite:///{tmp_path / 'c.db'}"]) == 2
    assert "name the person: --lead-id, --phone or --email" in capsys.readouterr().err
    assert run_cli(["forget", "--phone", "12", "--checkpoint", f"sqlite:///{tmp_path / 'c.db'}"]) == 2
    assert "not a phone number: '12'" in capsys.readouterr().err
