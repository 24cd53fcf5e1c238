"""DNCScrubStation through the core's harness: lookups, lists, and the stop decision hook."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from waystation import Engine, Outcome, Station, StepContext
from waystation.plugins import PluginHost
from waystation.testing import run_route, run_station
from waystation_dnc import plugin
from waystation_dnc.lists import UNLOADED
from waystation_dnc.stations import DNCScrubStation

Write = Callable[[str, str], Path]


def plain(run: Any) -> dict[str, Any]:
    """The step's fields without its evidence items (tested in test_dial.py)."""
    return {k: v for k, v in run.fields.items() if k != "dial_evidence"}


class Later(Station):
    """A station after the scrub that records every lead it sees."""

    name = "Later"
    requires = ("phone",)
    provides: ClassVar[dict[str, Any]] = {"later": bool}
    seen: ClassVar[list[str]] = []

    async def process(self, ctx: StepContext) -> Outcome:
        Later.seen.append(str(ctx.get("phone")))
        return Outcome({"later": True})


@pytest.fixture
def registry(write: Write, store_path: Path) -> dict[str, Any]:
    """Settings pointing at a small registry: 212 and 312 loaded (a directory of per-area-code
    files), a change list, internal and litigator lists."""
    write("ftc/full/212.txt", "2125550100\n2125550101\n")
    write("ftc/full/312.txt", "312,5550100\n")
    write("ftc/full/.DS_Store", "junk")
    return {
        "store": str(store_path),
        "federal_files": [str(store_path.parent.parent / "ftc" / "full")],
        "change_files": [str(write("ftc/changes.txt", "2125550102,A,20261127\n2125550101,D,20261127\n"))],
        "internal_files": [str(write("internal.csv", "phone\n(312) 555-0177\n"))],
        "litigator_files": [str(write("litigators.txt", "+1 212 555 0100\n"))],
    }


async def test_listed_on_federal_and_litigator(registry: dict[str, Any]) -> None:
    run = await run_station(DNCScrubStation, {"phone": "+12125550100"}, settings=registry, plugins=[plugin])
    assert plain(run) == {"dnc_listed": True, "dnc_lists": ["federal", "litigator"]}
    assert run.result.status == "stopped"
    assert run.record.stop == "skip_remaining"
    assert run.record.stop_reason == "phone is on federal, litigator: do not call"


async def test_change_lists_are_applied(registry: dict[str, Any]) -> None:
    added = await run_station(DNCScrubStation, {"phone": "+12125550102"}, settings=registry, plugins=[plugin])
    deleted = await run_station(DNCScrubStation, {"phone": "+12125550101"}, settings=registry, plugins=[plugin])
    assert added.fields["dnc_lists"] == ["federal"]
    assert plain(deleted) == {"dnc_listed": False, "dnc_lists": []}
    assert deleted.result.status == "succeeded"


async def test_internal_list_and_clear_number(registry: dict[str, Any]) -> None:
    internal = await run_station(DNCScrubStation, {"phone": "3125550177"}, settings=registry, plugins=[plugin])
    assert plain(internal) == {"dnc_listed": True, "dnc_lists": ["internal"]}
    clear = await run_station(DNCScrubStation, {"phone": "+13125550199"}, settings=registry, plugins=[plugin])
    assert plain(clear) == {"dnc_listed": False, "dnc_lists": []}


async def test_unloaded_area_code(registry: dict[str, Any]) -> None:
    run = await run_station(DNCScrubStation, {"phone": "+14155550100"}, settings=registry, plugins=[plugin])
    assert plain(run) == {"dnc_listed": True, "dnc_lists": [UNLOADED]}
    assert run.result.status == "stopped"
    lenient = {**registry, "unloaded_area_code": False}
    run = await run_station(DNCScrubStation, {"phone": "+14155550100"}, settings=lenient, plugins=[plugin])
    assert plain(run) == {"dnc_listed": False, "dnc_lists": []}


async def test_only_the_chosen_lists(registry: dict[str, Any]) -> None:
    settings = {**registry, "lists": ["litigator"]}
    run = await run_station(DNCScrubStation, {"phone": "+13125550100"}, settings=settings, plugins=[plugin])
    assert plain(run) == {"dnc_listed": False, "dnc_lists": []}


@pytest.mark.parametrize("lead", [{"phone": "+442071838750"}, {"phone": "555-0100"}, {"phone": "+1 (111) 555-0100"},
                                  {"phone": "(999) 555-0100", "phone_valid": False}])
async def test_numbers_it_cannot_judge_are_misses(registry: dict[str, Any], lead: dict[str, Any]) -> None:
    run = await run_station(DNCScrubStation, lead, settings=registry, plugins=[plugin])
    assert plain(run) == {}
    assert run.record.status == "succeeded" and not run.record.hit
    assert "dnc_listed" in run.record.misses
    assert run.result.status == "succeeded"


ROUTE = """
name: scrub-then-spend
steps:
  - station: DNCScrubStation
    settings: {settings}
  - station: Later
    after: DNCScrubStation
"""


@pytest.mark.parametrize(("on_listed", "status", "later_runs"), [
    ("skip_remaining", "stopped", False), ("fail", "failed", False), ("continue", "succeeded", True),
])
async def test_on_listed(registry: dict[str, Any], on_listed: str, status: str, later_runs: bool) -> None:
    import json

    Later.seen.clear()
    settings = json.dumps({**registry, "on_listed": on_listed})
    results = await run_route(ROUTE.format(settings=settings), [{"phone": "+12125550100"}, {"phone": "+12125550199"}],
                              [DNCScrubStation, Later], plugins=[plugin])
    listed, clear = results
    assert listed.status == status
    assert listed.steps["Later"].status == ("succeeded" if later_runs else "skipped")
    if not later_runs:
        assert listed.steps["Later"].reason == "stopped"
        assert "federal" in (listed.reason or "")
    assert clear.status == "succeeded" and clear.steps["Later"].status == "succeeded"
    assert Later.seen == (["+12125550100", "+12125550199"] if later_runs else ["+12125550199"])


def test_bad_on_listed_is_a_route_error(registry: dict[str, Any]) -> None:
    from waystation import RouteError

    with pytest.raises(RouteError, match="on_listed"):
        Engine.from_text(ROUTE.format(settings='{"on_listed": "maybe"}'), [DNCScrubStation, Later])


async def test_files_are_imported_once(registry: dict[str, Any], store_path: Path) -> None:
    from waystation_dnc.store import DNCStore

    await run_station(DNCScrubStation, {"phone": "+12125550100"}, settings=registry)
    await run_station(DNCScrubStation, {"phone": "+12125550100"}, settings=registry)
    with DNCStore(store_path) as st:
        kinds = sorted((i["list"], i["kind"]) for i in st.imports())
    assert kinds == [("federal", "changes"), ("federal", "full"), ("federal", "full"),
                     ("internal", "full"), ("litigator", "full")]


def _rewrite(path: Path, text: str) -> None:
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


async def test_internal_list_is_rebuilt_when_its_file_changes(registry: dict[str, Any], write: Write) -> None:
    await run_station(DNCScrubStation, {"phone": "3125550177"}, settings=registry)
    _rewrite(Path(registry["internal_files"][0]), "3125550188\n")
    removed = await run_station(DNCScrubStation, {"phone": "3125550177"}, settings=registry)
    added = await run_station(DNCScrubStation, {"phone": "3125550188"}, settings=registry)
    assert removed.fields["dnc_lists"] == []
    assert added.fields["dnc_lists"] == ["internal"]


async def test_store_from_environment(registry: dict[str, Any], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    env_store = tmp_path / "env" / "dnc.sqlite"
    monkeypatch.setenv("WAYSTATION_DNC_STORE", str(env_store))
    settings = {k: v for k, v in registry.items() if k != "store"}
    run = await run_station(DNCScrubStation, {"phone": "+12125550100"}, settings=settings)
    assert run.fields["dnc_listed"] is True
    assert env_store.exists()


def test_missing_registry_file_fails_the_step(tmp_path: Path) -> None:
    import asyncio

    settings = {"store": str(tmp_path / "s.sqlite"), "federal_files": [str(tmp_path / "nope.txt")]}
    run = asyncio.run(run_station(DNCScrubStation, {"phone": "+12125550100"}, settings=settings))
    assert run.record.status == "failed"
    assert "DNC file not found" in (run.record.error or "") and "nope.txt" in (run.record.error or "")


async def test_installed_plugin_is_discovered_with_its_hook(registry: dict[str, Any]) -> None:
    host = PluginHost.discover()
    assert host.get("DNCScrubStation") is DNCScrubStation
    import json
    text = f"name: discovered\nsteps:\n  - station: DNCScrubStation\n    settings: {json.dumps(registry)}\n"
    engine = Engine.from_text(text, host=host)
    async with engine:
        result = await engine.run({"phone": "+12125550100"})
    assert result.status == "stopped"


async def test_stale_data_warns_or_fails(write: Write, store_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from datetime import UTC, datetime, timedelta

    from waystation_dnc.store import DNCStore

    with DNCStore(store_path) as st:
        st.import_file(write("old/212.txt", "2125550100\n"), as_of=datetime.now(UTC) - timedelta(days=45))
    settings = {"store": str(store_path)}
    run = await run_station(DNCScrubStation, {"phone": "+12125550100"}, settings=settings)
    assert run.fields["dnc_listed"] is True
    assert "older than 31 days (federal: 45 days)" in caplog.text
    run = await run_station(DNCScrubStation, {"phone": "+12125550100"}, settings={**settings, "on_stale": "fail"})
    assert run.record.status == "failed" and "download the registry" in (run.record.error or "")
