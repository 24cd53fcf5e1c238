"""``waystation forget`` on the SQL save table: SQLite and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from waystation import PluginHost
from waystation.cli.main import run_cli
from waystation.forget import ForgetRequest, forget_person
from waystation.route import Route
from waystation.testing import run_station
from waystation_sql.stations import DatabaseSaveStation

from .conftest import PG_URL
from .test_save import rows

LEADS = [
    {"id": "L1", "first_name": "Ada", "phone": "+14155550100", "email": "ada@example.org"},
    {"id": "L2", "first_name": "Bob", "phones": ["+12125550199"], "email": "bob@example.org"},
    {"id": "L3", "first_name": "Cy", "phone": "+16465550142"},
]


def route_for(tmp_path: Path, settings: dict[str, object]) -> Route:
    text = "name: save\nsteps:\n  - station: DatabaseSaveStation\n    settings: " + json.dumps(settings) + "\n"
    path = tmp_path / "route.yaml"
    path.write_text(text)
    return Route.from_file(path)


async def save(settings: dict[str, object]) -> None:
    for lead in LEADS:
        run = await run_station(DatabaseSaveStation, lead, settings=settings)
        assert run.record.status == "succeeded"


async def check_forget(tmp_path: Path, settings: dict[str, object], url: str, schema: str | None) -> None:
    await save(settings)
    host = PluginHost.discover()
    route = route_for(tmp_path, settings)
    dry = await forget_person(ForgetRequest.build(phones=["212-555-0199"], route=route, dry_run=True), host)
    assert [(e.what, e.count) for e in dry if e.what == "rows"] == [("rows", 1)]
    assert len(rows(url, schema=schema)) == 3
    out = await forget_person(ForgetRequest.build(phones=["212-555-0199"], emails=["ADA@example.org"],
                                                  route=route), host)
    sql = [e for e in out if e.what == "rows"]
    assert sql, out
    assert len(sql) == 1 and sql[0].count == 2 and sql[0].where.endswith("leads")
    assert [r["lead_id"] for r in rows(url, schema=schema)] == ["L3"]
    out = await forget_person(ForgetRequest.build(lead_ids=["L3"], route=route), host)
    assert [e.count for e in out if e.what == "rows"] == [1]
    assert rows(url, schema=schema) == []


async def test_forget_on_sqlite(sqlite_url: str, tmp_path: Path) -> None:
    await check_forget(tmp_path, {"url": sqlite_url}, sqlite_url, None)


@pytest.mark.postgres
async def test_forget_on_postgres(pg_schema: str, tmp_path: Path) -> None:
    await check_forget(tmp_path, {"url": PG_URL, "schema_name": pg_schema}, PG_URL, pg_schema)


async def test_forget_command_with_the_route(sqlite_url: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    await save({"url": sqlite_url})
    route_for(tmp_path, {"url": sqlite_url})
    code = await asyncio.to_thread(run_cli, ["forget", "--lead-id", "L2", "--route", str(tmp_path / "route.yaml"),
                                             "--checkpoint", f"sqlite:///{tmp_path / 'ck.db'}", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    got = {e["what"]: e for e in json.loads(out.out)}
    assert got["rows"]["count"] == 1 and got["lead states"]["count"] == 0
    assert [r["lead_id"] for r in rows(sqlite_url)] == ["L1", "L3"]
