"""DatabaseSaveStation against real SQLite files and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from waystation import Engine, Outcome, Station, StepContext
from waystation.testing import run_station
from waystation_sql.db import category_of, column_name, convert
from waystation_sql.stations import DatabaseSaveStation

from .conftest import PG_URL


def rows(url: str, table: str = "leads", schema: str | None = None) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            t = sa.Table(table, sa.MetaData(), autoload_with=conn, schema=schema)
            return [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(t.c.lead_id))]
    finally:
        engine.dispose()


def columns(url: str, table: str = "leads", schema: str | None = None) -> dict[str, str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {c["name"]: str(c["type"]) for c in sa.inspect(conn).get_columns(table, schema=schema)}
    finally:
        engine.dispose()


def record(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@pytest.mark.parametrize(("field", "column"), [
    ("phone", "phone"), ("First Name", "first_name"), ("zip-code", "zip_code"), ("2nd_phone", "f_2nd_phone"),
    ("record", "f_record"), ("lead_id", "f_lead_id"), ('x"; DROP TABLE leads; --', "x_drop_table_leads"),
    ("!!!", None), ("Straße", "stra_e"),
])
def test_column_names(field: str, column: str | None) -> None:
    assert column_name(field) == column


def test_categories_and_conversion() -> None:
    assert [category_of(v) for v in (True, 3, 2**70, 1.5, ["a"], {"a": 1}, "x")] == \
        ["bool", "int", "text", "float", "json", "json", "text"]
    assert convert("12", "int") is None and convert(True, "int") is None and convert(3, "float") == 3.0
    assert convert(3, "text") == "3" and convert(["a"], "text") == '["a"]'


async def test_saves_once_per_lead_id(sqlite_url: str) -> None:
    lead = {"id": "L-1", "first_name": "José", "last_name": "Núñez", "zipcode": "02142"}
    first = await run_station(DatabaseSaveStation, lead, settings={"url": sqlite_url})
    assert first.fields["saved"] is True and first.record.status == "succeeded"
    second = await run_station(DatabaseSaveStation, {**lead, "income": 150294}, settings={"url": sqlite_url})
    saved = rows(sqlite_url)
    assert len(saved) == 1
    row = saved[0]
    assert row["lead_id"] == "L-1" and row["first_name"] == "José" and row["zipcode"] == "02142"
    assert row["income"] == 150294
    assert record(row["record"]) == {**lead, "income": 150294}
    assert row["first_saved_at"] < row["saved_at"]
    assert second.fields["saved_at"].startswith(str(row["saved_at"].year))


async def test_columns_follow_the_fields(sqlite_url: str) -> None:
    await run_station(DatabaseSaveStation, {"id": "a", "phone": "+12125550100"}, settings={"url": sqlite_url})
    await run_station(DatabaseSaveStation, {"id": "b", "dnc_listed": True, "dnc_lists": ["federal"], "score": 0.5,
                                            "First Name": "Zoë", "empty": "", "nothing": None},
                      settings={"url": sqlite_url})
    cols = columns(sqlite_url)
    assert {"lead_id", "route", "record", "first_saved_at", "saved_at", "id", "phone", "dnc_listed", "dnc_lists",
            "score", "first_name"} == set(cols)
    assert cols["dnc_listed"] == "BOOLEAN" and cols["score"] == "DOUBLE" and cols["dnc_lists"] == "JSON"
    by_id = {r["lead_id"]: r for r in rows(sqlite_url)}
    assert by_id["a"]["phone"] == "+12125550100" and by_id["a"]["dnc_listed"] is None
    assert by_id["b"]["dnc_listed"] is True and by_id["b"]["first_name"] == "Zoë"
    assert record(by_id["b"]["dnc_lists"]) == ["federal"]
    assert record(by_id["b"]["record"])["empty"] == ""


async def test_a_value_of_another_type_is_kept_in_the_record_only(sqlite_url: str) -> None:
    await run_station(DatabaseSaveStation, {"id": "a", "income": 50000}, settings={"url": sqlite_url})
    await run_station(DatabaseSaveStation, {"id": "b", "income": "n/a"}, settings={"url": sqlite_url})
    by_id = {r["lead_id"]: r for r in rows(sqlite_url)}
    assert by_id["b"]["income"] is None
    assert record(by_id["b"]["record"])["income"] == "n/a"


async def test_hostile_field_names_are_quoted_not_executed(sqlite_url: str) -> None:
    lead = {"id": "x", 'name"); DROP TABLE leads; --': "bobby", "select": "kw", "Order": 1}
    run = await run_station(DatabaseSaveStation, lead, settings={"url": sqlite_url, "table": "my leads"})
    assert run.record.status == "succeeded"
    saved = rows(sqlite_url, "my leads")
    assert saved[0]["name_drop_table_leads"] == "bobby" and saved[0]["select"] == "kw" and saved[0]["order"] == 1


async def test_include_and_exclude(sqlite_url: str) -> None:
    lead = {"id": "1", "phone": "+12125550100", "email": "a@example.com", "ssn": "secret"}
    await run_station(DatabaseSaveStation, lead, settings={"url": sqlite_url, "exclude": ["ssn"]})
    assert "ssn" not in columns(sqlite_url)
    assert "ssn" not in record(rows(sqlite_url)[0]["record"])
    await run_station(DatabaseSaveStation, lead, settings={"url": sqlite_url, "table": "t2", "include": ["phone"]})
    assert set(columns(sqlite_url, "t2")) == {"lead_id", "route", "record", "first_saved_at", "saved_at", "phone"}


class Enrich(Station):
    """Adds a couple of fields, a little later for some leads."""

    name = "Enrich"
    requires = ("zipcode",)
    provides: ClassVar[dict[str, Any]] = {"income": int, "tags": list[str]}

    async def process(self, ctx: StepContext) -> Outcome:
        await asyncio.sleep(0.001 * (int(ctx.lead_id) % 5))
        return Outcome({"income": 1000 * int(ctx.lead_id), "tags": ["x"]})


ROUTE = """
name: save-after-enrich
steps:
  - station: Enrich
  - station: DatabaseSaveStation
    after: Enrich
    settings: {{url: "{url}", table: "{table}"{schema}}}
"""


async def _run_concurrently(url: str, table: str, schema: str | None = None, n: int = 60) -> list[Any]:
    text = ROUTE.format(url=url, table=table, schema=f', schema_name: "{schema}"' if schema else "")
    engine = Engine.from_text(text, [Enrich, DatabaseSaveStation])
    async with engine:
        return list(await asyncio.gather(*[engine.run({"id": str(i), "zipcode": "10001"}) for i in range(n)]))


async def test_concurrent_leads_and_rerun_do_not_duplicate(sqlite_url: str) -> None:
    results = await _run_concurrently(sqlite_url, "leads")
    assert all(r.steps["DatabaseSaveStation"].status == "succeeded" for r in results)
    again = await _run_concurrently(sqlite_url, "leads")
    assert all(r.data["saved"] for r in again)
    saved = rows(sqlite_url)
    assert len(saved) == 60
    assert {r["lead_id"]: r["income"] for r in saved} == {str(i): 1000 * i for i in range(60)}
    assert all(record(r["tags"]) == ["x"] for r in saved)


async def test_unreachable_database_is_a_recorded_failure(tmp_path: Any) -> None:
    url = "postgresql+psycopg://nobody:hunter2@127.0.0.1:1/none"
    run = await run_station(DatabaseSaveStation, {"id": "1"}, settings={"url": url},
                            step={"retry": {"max_attempts": 2}})
    assert run.record.status == "failed" and run.record.attempts == 2
    assert run.record.error_category == "transient"
    assert "hunter2" not in (run.record.error or "")
    assert "postgresql database none at 127.0.0.1:1 as nobody, table leads" in (run.record.error or "")


async def test_sqlite_errors_name_the_file(tmp_path: Any) -> None:
    (tmp_path / "a-directory.db").mkdir()
    url = f"sqlite:///{tmp_path / 'a-directory.db'}"
    run = await run_station(DatabaseSaveStation, {"id": "1"}, settings={"url": url})
    assert run.record.status == "failed"
    assert f"SQLite file {tmp_path / 'a-directory.db'} table leads" in (run.record.error or "")


def test_bad_url_is_a_route_error() -> None:
    from waystation import RouteError

    with pytest.raises(RouteError, match="not a database URL"):
        Engine.from_text("name: r\nsteps:\n  - station: DatabaseSaveStation\n    settings: {url: leads.db}\n",
                         [DatabaseSaveStation])


async def test_url_from_environment(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("WAYSTATION_SQL_URL", url)
    await run_station(DatabaseSaveStation, {"id": "e"}, settings={})
    assert rows(url)[0]["lead_id"] == "e"


@pytest.mark.postgres
async def test_postgres_upsert_columns_and_jsonb(pg_schema: str) -> None:
    settings = {"url": PG_URL, "schema_name": pg_schema, "table": "leads"}
    lead = {"id": "P-1", "first_name": "Zoë", "zipcode": "02142", "dnc_lists": ["internal"], "ok": False}
    await run_station(DatabaseSaveStation, lead, settings=settings)
    await run_station(DatabaseSaveStation, {**lead, "income": 150294, "score": 0.25}, settings=settings)
    saved = rows(PG_URL, "leads", pg_schema)
    assert len(saved) == 1
    row = saved[0]
    assert row["first_name"] == "Zoë" and row["income"] == 150294 and row["score"] == 0.25 and row["ok"] is False
    assert row["record"] == {**lead, "income": 150294, "score": 0.25}
    assert row["dnc_lists"] == ["internal"]
    cols = columns(PG_URL, "leads", pg_schema)
    assert cols["record"] == "JSONB" and cols["income"] == "BIGINT" and cols["score"] == "DOUBLE PRECISION"


@pytest.mark.postgres
async def test_postgres_concurrent_and_rerun(pg_schema: str) -> None:
    url = PG_URL.replace("postgresql+psycopg://", "postgresql://")  # plain scheme is read as psycopg 3
    await _run_concurrently(url, "leads_conc", pg_schema)
    await _run_concurrently(url, "leads_conc", pg_schema)
    saved = rows(PG_URL, "leads_conc", pg_schema)
    assert len(saved) == 60 and {r["lead_id"]: r["income"] for r in saved} == {str(i): 1000 * i for i in range(60)}


def test_two_processes_adding_the_same_column_at_once(sqlite_url: str) -> None:
    import threading

    from waystation_sql.db import LeadTable
    from waystation_sql.stations import SQLSettings

    tables = [LeadTable(SQLSettings(url=sqlite_url)) for _ in range(2)]
    for t in tables:
        t.open()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        barrier.wait()
        try:
            for j in range(20):
                tables[i].save(f"{i}-{j}", "r", {"id": f"{i}-{j}", f"new_{j}": j, "shared": "x"})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for t in tables:
        t.close()
    assert errors == []
    saved = rows(sqlite_url)
    assert len(saved) == 40
    assert {f"new_{j}" for j in range(20)} <= set(columns(sqlite_url))
    assert all(r[f"new_{r['lead_id'].split('-')[1]}"] == int(r["lead_id"].split("-")[1]) for r in saved)
