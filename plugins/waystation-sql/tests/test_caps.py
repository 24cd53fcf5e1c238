"""Input cannot take over the schema: column caps, overflow kept in ``record``, no system-column
collisions — on SQLite and on the real PostgreSQL (whose hard limit is 1,600 columns)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from waystation import Engine
from waystation.testing import run_station
from waystation_sql.db import FIXED, column_name
from waystation_sql.stations import DatabaseSaveStation

from .conftest import PG_URL
from .test_save import columns, record, rows


@pytest.mark.parametrize("field", ["xmin", "xmax", "cmin", "cmax", "ctid", "oid", "tableoid", "rowid", "_rowid_",
                                   "XMIN", "ctid "])
def test_system_column_names_get_a_prefix(field: str) -> None:
    assert column_name(field) == "f_" + field.strip().strip("_").lower()


async def save_all(url: str, leads: list[dict[str, object]], **settings: object) -> list[str]:
    statuses = []
    for lead in leads:
        run = await run_station(DatabaseSaveStation, lead, settings={"url": url, **settings})
        statuses.append(run.record.status)
    return statuses


def wide_lead(lead_id: str, n: int, prefix: str = "f") -> dict[str, object]:
    return {"id": lead_id, **{f"{prefix}{i}": i for i in range(n)}}


async def check_caps(url: str, schema: str | None, caplog: pytest.LogCaptureFixture) -> None:
    settings = {"schema_name": schema} if schema else {}
    with caplog.at_level(logging.WARNING, logger="waystation.sql"):
        statuses = await save_all(url, [
            wide_lead("wide", 1_700),                     # would leave PostgreSQL at its 1,600-column limit
            {"id": "later", "xmin": "x", "ctid": "c", "brand_new": 1},
        ], max_columns=100, **settings)
        # a generous per-lead cap: now the table cap stops it
        statuses += await save_all(url, [wide_lead("wider", 300, "g")], max_columns=100,
                                   max_new_columns_per_lead=1000, **settings)
    assert statuses == ["succeeded"] * 3
    cols = set(columns(url, schema=schema)) - set(FIXED)
    assert len(cols) == 100
    # the first lead added only max_new_columns_per_lead (32) columns: id, f0..f30
    assert {"id", "f0", "f30"} <= cols and "f31" not in cols
    assert {"f_xmin", "f_ctid", "brand_new"} <= cols
    by_id = {r["lead_id"]: r for r in rows(url, schema=schema)}
    assert record(by_id["wide"]["record"])["f1699"] == 1699  # the overflow is kept in the record
    assert by_id["later"]["f_xmin"] == "x" and by_id["later"]["brand_new"] == 1
    assert len(record(by_id["wider"]["record"])) == 301
    assert "no column for" in caplog.text and "max_columns=100" in caplog.text


async def test_caps_on_sqlite(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    await check_caps(sqlite_url, None, caplog)


@pytest.mark.postgres
async def test_caps_on_postgres(pg_schema: str, caplog: pytest.LogCaptureFixture) -> None:
    await check_caps(PG_URL, pg_schema, caplog)


@pytest.mark.postgres
async def test_default_caps_keep_postgres_below_its_limit(pg_schema: str) -> None:
    """With the defaults, 60 leads of 100 new fields each: the table stops at 200 field columns
    and every lead still saves (without the cap the 16th lead would fail for good)."""
    leads = [{"id": f"L{n}", **{f"n{n}_{i}": i for i in range(100)}} for n in range(60)]
    statuses = await save_all(PG_URL, leads, schema_name=pg_schema)
    assert statuses == ["succeeded"] * 60
    assert len(set(columns(PG_URL, schema=pg_schema)) - set(FIXED)) == 200


async def test_a_failed_save_fails_the_lead_visibly(tmp_path: Path) -> None:
    """As in the shipped routes (``on_error: fail``): a save that could not happen is never
    'succeeded' (here the database path is under a regular file, so it cannot be created)."""
    (tmp_path / "file").write_text("x")
    route = ("name: save\nsteps:\n  - station: DatabaseSaveStation\n    on_error: fail\n    retry: {max_attempts: 1}\n"
             f"    settings: {{url: 'sqlite:///{tmp_path / 'file' / 'db' / 'leads.db'}'}}\n")
    async with Engine.from_text(route, [DatabaseSaveStation]) as engine:
        result = await engine.run({"id": "L1", "first_name": "Ada"})
    assert result.status == "failed"
    assert result.reason is not None and result.reason.startswith("DatabaseSaveStation failed: ")
    assert result.data["first_name"] == "Ada"  # the input is kept
