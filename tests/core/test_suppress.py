"""The suppression ledger: keyed hashes only, a secret that must match, the CLI, and the screen that
stops a suppressed lead before any step (also a phone a vendor returned, also under a new lead id)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import toys
from click.testing import CliRunner
from toys import make
from waystation import Engine, PluginHost
from waystation.cli.main import cli
from waystation.suppress import LedgerError, SuppressionLedger, SuppressionScreen


@pytest.fixture
def ledger_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "sup" / "suppress.sqlite"
    monkeypatch.setenv("WAYSTATION_SUPPRESS_LEDGER", str(path))
    monkeypatch.delenv("WAYSTATION_SUPPRESS_SECRET", raising=False)
    return path


def test_ledger_normalises_and_keeps_no_readable_personal_data(ledger_file: Path) -> None:
    with SuppressionLedger() as led:
        assert led.add("(212) 555-0123", reason="opt-out", requested_at="2026-11-02") is not None
        assert led.add(" Karen.Patel@Example.com ", reason="erasure") is not None
        assert led.add("n/a") is None
        for same in ("+1 212 555 0123", "12125550123", "212.555.0123"):
            assert led.lookup(same) is not None
        assert led.lookup("karen.patel@example.com") is not None
        assert led.lookup("+1 212 555 0124") is None
        assert led.match({"phones": ["+13125550100", "+12125550123"]}) is not None
        assert led.match({"email": "someone@example.com"}) is None
        assert [e.kind for e in led.entries()] == ["phone", "email"]
    raw = ledger_file.read_bytes() + b"".join(p.read_bytes() for p in ledger_file.parent.glob("suppress.sqlite*"))
    for text in (b"2125550123", b"5550123", b"karen", b"example.com"):
        assert text not in raw
    key = ledger_file.with_name("suppress.sqlite.key")
    assert key.exists() and (os.stat(key).st_mode & 0o777) == 0o600


def test_secret_missing_or_wrong_is_refused(ledger_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with SuppressionLedger() as led:
        led.add("+12125550123")
    key = ledger_file.with_name("suppress.sqlite.key")
    saved = key.read_text()
    key.unlink()
    with pytest.raises(LedgerError, match="secret is missing"):
        SuppressionLedger(create=False)
    monkeypatch.setenv("WAYSTATION_SUPPRESS_SECRET", "00" * 32)
    with pytest.raises(LedgerError, match="does not match"):
        SuppressionLedger(create=False)
    monkeypatch.setenv("WAYSTATION_SUPPRESS_SECRET", saved.strip())
    with SuppressionLedger(create=False) as led:
        assert led.lookup("2125550123") is not None


def test_cli_add_list_check_remove_import(ledger_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["suppress", "add", "+1 (212) 555-0123", "ada@example.com", "--reason", "erasure",
                              "--date", "2026-11-01"])
    assert res.exit_code == 0, res.output
    assert "2125550123" not in res.output and "ada@" not in res.output
    res = runner.invoke(cli, ["suppress", "list", "--json"])
    entries = json.loads(res.output)
    entries.sort(key=lambda e: e["kind"], reverse=True)
    assert [(e["kind"], e["reason"], e["requested_at"][:10]) for e in entries] == [
        ("phone", "erasure", "2026-11-01"), ("email", "erasure", "2026-11-01")]
    assert "example" not in res.output
    assert runner.invoke(cli, ["suppress", "check", "2125550123"]).exit_code == 1
    assert runner.invoke(cli, ["suppress", "check", "2125550199"]).exit_code == 0
    assert runner.invoke(cli, ["suppress", "remove", entries[1]["hash"]]).exit_code == 0
    assert runner.invoke(cli, ["suppress", "remove", "2125550123"]).exit_code == 0
    assert runner.invoke(cli, ["suppress", "remove", "2125550123"]).exit_code == 1
    csv_file = tmp_path / "optouts.csv"
    csv_file.write_text("name,phone,email,date\nA,3125550100,,2026-10-01\nB,,b@example.com,\nC,garbage,,\n")
    res = runner.invoke(cli, ["suppress", "import", str(csv_file)])
    assert res.exit_code == 0 and "2 suppressed, 1 skipped" in res.output
    txt = tmp_path / "optouts.txt"
    txt.write_text("# opt-outs\n+14155550100\nc@example.com\n")
    assert "2 suppressed" in runner.invoke(cli, ["suppress", "import", str(txt), "--reason", "opt-out"]).output
    assert len(json.loads(runner.invoke(cli, ["suppress", "list", "--json"]).output)) == 4


ROUTE = """
name: paid
steps:
  - station: Normalize
  - station: SkipTrace
    condition: "phone not exists"
  - station: PhoneLookup
    requires: []
  - station: Save
"""


def _stations(found_phone: str) -> list:
    return [
        make("Normalize", {"email": str}, optional=("email",), value={"email": None}),
        make("SkipTrace", {"phone": str}, cost=0.02, value={"phone": found_phone}),
        make("PhoneLookup", {"line_type": str}, requires=("phone",), cost=0.005, value={"line_type": "mobile"}),
        make("Save", {"saved": bool}, optional=("line_type",), value={"saved": True}),
    ]


async def _run(lead: dict, found_phone: str = "+13125550100") -> object:
    host = PluginHost()  # registers the screen: the ledger file exists
    host.add_stations(_stations(found_phone))
    async with Engine.from_text(ROUTE.replace("    requires: []\n", ""), host=host) as engine:
        return await engine.run(lead)


async def test_suppressed_phone_stops_the_lead_before_any_step(ledger_file: Path) -> None:
    with SuppressionLedger() as led:
        led.add("212-555-0123", reason="opt-out")
    rec = toys.reset()
    result = await _run({"id": "L1", "phone": "(212) 555-0123"})
    assert rec.calls == []
    assert result.status == "stopped" and "suppression ledger" in (result.reason or "")  # type: ignore[attr-defined]
    assert result.total_cost == 0  # type: ignore[attr-defined]
    # the same person under another lead id, phone written differently: still nothing runs
    again = await _run({"id": "L2-new-id", "phone": "+1 212 555 0123", "first_name": "Ada"})
    assert rec.calls == [] and again.status == "stopped"  # type: ignore[attr-defined]


async def test_a_suppressed_phone_returned_by_a_vendor_is_not_looked_up_or_saved(ledger_file: Path) -> None:
    with SuppressionLedger() as led:
        led.add("+13125550100", reason="erasure")
    rec = toys.reset()
    result = await _run({"id": "L3", "email": "x@example.com"})
    assert rec.calls == ["Normalize", "SkipTrace"]  # the skip trace re-sourced the person: nothing after it
    assert result.steps["PhoneLookup"].reason == "screened"  # type: ignore[attr-defined]
    assert result.steps["Save"].status == "skipped"  # type: ignore[attr-defined]
    rec = toys.reset()
    fine = await _run({"id": "L4", "email": "y@example.com"}, found_phone="+13125550111")
    assert rec.calls == ["Normalize", "SkipTrace", "PhoneLookup", "Save"] and fine.status == "succeeded"  # type: ignore[attr-defined]


async def test_suppressed_email_and_unreadable_ledger_fail_closed(ledger_file: Path) -> None:
    with SuppressionLedger() as led:
        led.add("Ada@Example.com")
    rec = toys.reset()
    result = await _run({"id": "L5", "email": "ada@example.com", "phone": "+14155550100"})
    assert rec.calls == [] and result.status == "stopped"  # type: ignore[attr-defined]
    ledger_file.with_name("suppress.sqlite.key").unlink()
    rec = toys.reset()
    result = await _run({"id": "L6", "phone": "+14155550100"})
    assert rec.calls == [] and "could not run" in (result.reason or "")  # type: ignore[attr-defined]


def test_no_ledger_file_means_no_screen(ledger_file: Path) -> None:
    host = PluginHost()
    assert not ledger_file.exists()
    assert not any(isinstance(p, SuppressionScreen) for p in host.pm.get_plugins())


async def test_forget_writes_the_person_to_the_ledger_also_from_their_saved_lead_states(
        ledger_file: Path, tmp_path: Path) -> None:
    from waystation.forget import ForgetRequest, forget_person
    from waystation.stores import open_store

    ckpt = f"sqlite:///{tmp_path / 'ck.db'}"
    store = open_store(ckpt)
    host = PluginHost()
    host.add_stations(_stations("+13125550100"))
    async with Engine.from_text(ROUTE.replace("    requires: []\n", ""), host=host, checkpointer=store,
                                run_id="r1") as engine:
        await engine.run({"id": "L7", "email": "grace@example.com"})  # the skip trace finds +1 312 555 0100
    await store.close()
    # only the lead id is known: the ledger learns their phone and e-mail from the saved state
    request = ForgetRequest.build(lead_ids=["L7"], checkpoint=ckpt)
    erasures = await forget_person(request, PluginHost())
    ledger = next(e for e in erasures if e.where.startswith("suppression ledger"))
    assert ledger.count == 2
    assert erasures.index(ledger) == 0  # it read the states before the core erased them
    with SuppressionLedger() as led:
        assert led.lookup("+13125550100") is not None and led.lookup("grace@example.com") is not None
        assert {e.reason for e in led.entries()} == {"erasure"}
    # the same person under a new lead id: nothing runs
    rec = toys.reset()
    result = await _run({"id": "L7-again", "email": "Grace@Example.com"})
    assert rec.calls == [] and result.status == "stopped"  # type: ignore[attr-defined]
    dry = await forget_person(ForgetRequest.build(phones=["+1 202 555 0100"], dry_run=True), PluginHost())
    assert dry[0].count == 1 and "dry run" in dry[0].note and dry[0].what == "entries"
    with SuppressionLedger() as led:
        assert led.lookup("2025550100") is None
