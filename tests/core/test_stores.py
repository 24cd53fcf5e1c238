"""The checkpoint-store conformance suite: one set of tests, run against memory, SQLite and Redis.

Redis tests need the server on 127.0.0.1:6379 (marker ``redis``; skipped when it is absent, a
failure under ``CI=true``). Every Redis test uses its own key prefix and deletes its keys.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from services import KINDS, REDIS_URL
from waystation.budget import Budget
from waystation.stores import (
    CheckpointStore,
    budget_ledger,
    dumps,
    open_store,
    redact_url,
)
from waystation.stores.sqlite import SQLiteStore, path_of


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[CheckpointStore]:
    s = open_store(store_url)
    yield s
    await s.close()


def state(lead_id: str, status: str = "running", **extra: Any) -> dict[str, Any]:
    return {"lead_id": lead_id, "route": "r", "run_id": "run-1", "input": {"id": lead_id, "city": "Austin"},
            "steps": {"A": {"status": "succeeded", "attempts": 1}}, "outcomes": {"A": {"a": "x"}},
            "provenance": {}, "spent_micros": 0, "errors": [], "status": status, "reason": None, **extra}


def without_saved_at(s: dict[str, Any] | None) -> dict[str, Any] | None:
    assert s is not None
    assert isinstance(s.pop("saved_at"), float)
    return s


ALL = pytest.mark.parametrize("store_url", KINDS, indirect=True)


# -- the protocol ---------------------------------------------------------------------------------

@ALL
async def test_is_a_checkpoint_store(store: CheckpointStore, store_url: str) -> None:
    assert isinstance(store, CheckpointStore)
    assert store.url == redact_url(store_url)


@ALL
async def test_save_then_load_round_trips_and_missing_is_none(store: CheckpointStore) -> None:
    assert await store.load("run-1", "L1") is None
    s = state("L1", unicode="Zoë — 東京", nested={"a": [1, 2.5, None, True]})
    await store.save("run-1", "L1", s)
    assert without_saved_at(await store.load("run-1", "L1")) == s
    assert await store.load("run-1", "L2") is None
    assert await store.load("run-2", "L1") is None


@ALL
async def test_a_save_is_a_snapshot_not_a_reference(store: CheckpointStore) -> None:
    s = state("L1")
    await store.save("run-1", "L1", s)
    s["outcomes"]["B"] = {"b": "later"}
    s["status"] = "failed"
    loaded = without_saved_at(await store.load("run-1", "L1"))
    assert loaded is not None and "B" not in loaded["outcomes"] and loaded["status"] == "running"


@ALL
async def test_overwrite_replaces_the_whole_state(store: CheckpointStore) -> None:
    await store.save("run-1", "L1", state("L1", extra_key=1))
    await store.save("run-1", "L1", state("L1", "succeeded"))
    loaded = without_saved_at(await store.load("run-1", "L1"))
    assert loaded == state("L1", "succeeded")


@ALL
async def test_iter_states_yields_every_lead_of_a_run_once(store: CheckpointStore) -> None:
    ids = [f"L{i:05d}" for i in range(1234)]  # more than one page
    await asyncio.gather(*(store.save("run-1", i, state(i)) for i in ids))
    await store.save("run-2", "other", state("other"))
    await store.save("run-1", "L00007", state("L00007", "succeeded"))  # overwritten: still once
    seen = [s["lead_id"] async for s in store.iter_states("run-1")]
    assert sorted(seen) == ids
    assert [s["lead_id"] async for s in store.iter_states("run-2")] == ["other"]
    assert [s async for s in store.iter_states("nothing")] == []


@ALL
async def test_runs_metadata_and_listing(store: CheckpointStore) -> None:
    assert await store.load_run("run-a") is None
    assert await store.list_runs() == []
    meta = {"route_name": "free-only", "input": "/data/leads.csv", "options": {"concurrency": 8}}
    await store.save_run("run-a", meta)
    await asyncio.sleep(0.01)
    await store.save_run("run-b", {"route_name": "hybrid"})
    assert await store.load_run("run-a") == meta
    first = await store.list_runs()
    assert [r["run_id"] for r in first] == ["run-a", "run-b"]
    assert first[0]["route_name"] == "free-only" and first[0]["options"] == {"concurrency": 8}
    await asyncio.sleep(0.01)
    await store.save_run("run-a", {**meta, "report": {"leads": 3}})  # replace, creation time kept
    again = {r["run_id"]: r for r in await store.list_runs()}
    assert again["run-a"]["report"] == {"leads": 3}
    assert again["run-a"]["created_at"] == first[0]["created_at"]
    assert again["run-a"]["updated_at"] > first[0]["updated_at"]
    assert await store.load_run("run-a") == {**meta, "report": {"leads": 3}}


@ALL
async def test_concurrent_saves_share_transactions(store: CheckpointStore) -> None:
    stats = store.stats  # type: ignore[attr-defined]
    before_saves, before_txns = stats.saves, stats.transactions
    await asyncio.gather(*(store.save("run-1", f"L{i}", state(f"L{i}")) for i in range(500)))
    saves, txns = stats.saves - before_saves, stats.transactions - before_txns
    assert saves == 500
    assert 1 <= txns < saves / 10, f"{txns} transactions for {saves} saves: no group commit"
    assert len([s async for s in store.iter_states("run-1")]) == 500


@ALL
async def test_saves_of_one_lead_in_one_batch_keep_the_last(store: CheckpointStore) -> None:
    await asyncio.gather(*(store.save("run-1", "L1", state("L1", step=i)) for i in range(50)))
    loaded = await store.load("run-1", "L1")
    assert loaded is not None and loaded["step"] == 49


@ALL
async def test_every_waiter_sees_its_write_when_save_returns(store: CheckpointStore) -> None:
    async def writer(i: int) -> None:
        for k in range(5):
            await store.save("run-1", f"L{i}", state(f"L{i}", k=k))
            loaded = await store.load("run-1", f"L{i}")
            assert loaded is not None and loaded["k"] == k  # read-your-writes after save returns

    await asyncio.gather(*(writer(i) for i in range(100)))


@ALL
async def test_a_cancelled_waiter_does_not_lose_the_others(store: CheckpointStore) -> None:
    tasks = [asyncio.ensure_future(store.save("run-1", f"L{i}", state(f"L{i}"))) for i in range(20)]
    await asyncio.sleep(0)
    tasks[3].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for i in range(20):
        if i != 3:
            assert await store.load("run-1", f"L{i}") is not None


@ALL
async def test_secrets_are_refused(store: CheckpointStore) -> None:
    with pytest.raises(TypeError, match="secret"):
        await store.save("run-1", "L1", state("L1", api_key=SecretStr("sk-live-123")))
    assert await store.load("run-1", "L1") is None
    with pytest.raises(TypeError):
        await store.save("run-1", "L1", state("L1", thing=object()))


@ALL
async def test_bad_ids_are_refused(store: CheckpointStore) -> None:
    with pytest.raises(ValueError):
        await store.save("", "L1", state("L1"))
    with pytest.raises(ValueError):
        await store.load("run-1", "")


@ALL
async def test_durable_for_a_new_store_on_the_same_url(store: CheckpointStore, store_url: str) -> None:
    if store_url.startswith("memory"):
        pytest.skip("a memory store lives and dies with its process")
    await store.save("run-1", "L1", state("L1", "succeeded"))
    await store.save_run("run-1", {"route_name": "r"})
    other = open_store(store_url)  # another process would open it like this
    try:
        assert without_saved_at(await other.load("run-1", "L1")) == state("L1", "succeeded")
        assert await other.load_run("run-1") == {"route_name": "r"}
    finally:
        await other.close()


@ALL
async def test_closed_store_refuses_writes(store_url: str) -> None:
    s = open_store(store_url)
    await s.save("run-1", "L1", state("L1"))
    await s.close()
    await s.close()  # idempotent
    with pytest.raises(RuntimeError):
        await s.save("run-1", "L2", state("L2"))


@ALL
async def test_budget_ledger_recomputes_spend_from_states(store: CheckpointStore) -> None:
    await store.save("run-1", "L1", state("L1", "succeeded", spent_micros=250_000))
    await store.save("run-1", "L2", {**state("L2", spent_micros=100_000), "steps": {
        "A": {"status": "succeeded"}, "B": {"status": "running", "intent": True, "pending_cost": 0.25}}})
    await store.save("run-1", "L3", state("L3", "failed", spent_micros=50_000))
    ledger = await budget_ledger(store, "run-1")
    assert ledger.leads == 3 and ledger.finished == 2
    assert ledger.spent_micros == 400_000
    assert [(i.lead_id, i.step_id, i.micros) for i in ledger.intents] == [("L2", "B", 250_000)]
    assert ledger.total_micros == 650_000 and ledger.total == pytest.approx(0.65)
    assert ledger.in_doubt_calls == 0  # saved just now: its lease still runs
    later = await budget_ledger(store, "run-1", lease_seconds=60, now=ledger.intents[0].saved_at + 61)
    assert later.in_doubt_calls == 1 and later.total_micros == 650_000  # expired: still counted, as spend
    batch = ledger.restore(Budget(1.0, name="batch"))
    assert batch.spent == pytest.approx(0.40) and batch.reserved == pytest.approx(0.25)
    assert batch.remaining == pytest.approx(0.35)
    assert [r.holder for r in batch.reservations.values()] == ["L2/B"]


# -- implementation details that matter ----------------------------------------------------------

@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_sqlite_is_one_file_in_wal_mode_and_committed_for_other_connections(
        store: CheckpointStore, store_url: str) -> None:
    assert isinstance(store, SQLiteStore) and store.synchronous == "FULL"
    await store.save("run-1", "L1", state("L1"))
    conn = sqlite3.connect(path_of(store_url))  # a plain reader, as another process
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = conn.execute("SELECT run_id, lead_id, status FROM lead_state").fetchall()
        assert rows == [("run-1", "L1", "running")]
    finally:
        conn.close()


def test_sqlite_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert path_of("sqlite:///rel/ck.db") == Path("rel/ck.db")
    assert path_of("sqlite:////abs/ck.db") == Path("/abs/ck.db")
    assert path_of("sqlite://") == Path(".waystation/checkpoints.db")
    assert path_of("sqlite:///") == Path(".waystation/checkpoints.db")
    with pytest.raises(ValueError, match="memory"):
        path_of("sqlite:///:memory:")
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore(f"sqlite:///{tmp_path / 'x.db'}?synchronous=off")
    monkeypatch.chdir(tmp_path)

    async def default_location() -> None:
        s = open_store("sqlite://")
        await s.save("r", "l", {"status": "running"})
        await s.close()

    asyncio.run(default_location())
    assert (tmp_path / ".waystation" / "checkpoints.db").exists()


def test_unknown_scheme_and_password_redaction() -> None:
    with pytest.raises(ValueError, match="unknown checkpoint store"):
        open_store("postgres://u:hunter2@localhost/db")
    try:
        open_store("ftp://u:hunter2@host/x")
    except ValueError as exc:
        assert "hunter2" not in str(exc)
    assert redact_url("redis://:hunter2@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"


def test_json_encoding_of_common_types() -> None:
    import datetime
    import decimal

    text = dumps({"d": datetime.date(2024, 5, 1), "n": decimal.Decimal("1.50"), "s": {1}, 1: "int key"})
    assert text == '{"d":"2024-05-01","n":"1.50","s":[1],"1":"int key"}'


# -- Redis: TTL with the write, atomically --------------------------------------------------------

@pytest.mark.parametrize("store_url", [pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
async def test_redis_ttl_is_set_in_the_same_transaction_as_the_write(store_url: str) -> None:
    from redis.asyncio import Redis

    store = open_store(store_url)
    monitor_client = Redis.from_url(REDIS_URL)
    commands: list[str] = []
    try:
        async with monitor_client.monitor() as mon:
            await mon.connect()

            async def listen() -> None:
                async for info in mon.listen():
                    commands.append(info["command"])

            task = asyncio.ensure_future(listen())
            await asyncio.sleep(0.05)
            await asyncio.gather(*(store.save("run-ttl", f"L{i}", state(f"L{i}")) for i in range(3)))
            await store.save_run("run-ttl", {"route_name": "r"})
            await asyncio.sleep(0.2)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        prefix = store.prefix  # type: ignore[attr-defined]
        mine = [c for c in commands if prefix in c or c in ("MULTI", "EXEC")]
        leads_key = f"{prefix}:{{run-ttl}}:leads"
        hset = next(i for i, c in enumerate(mine) if c.startswith("HSET") and leads_key in c)
        # the write and its TTL sit between one MULTI and its EXEC
        start = max(i for i in range(hset) if mine[i] == "MULTI")
        end = next(i for i in range(hset, len(mine)) if mine[i] == "EXEC")
        assert any(c.startswith("EXPIRE") and leads_key in c and "600" in c for c in mine[start:end]), mine
        assert 0 < await store.ttl_of("run-ttl") <= 600  # type: ignore[attr-defined]
    finally:
        await monitor_client.aclose()
        await store.close()


@pytest.mark.parametrize("store_url", [pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
async def test_redis_keys_expire(store_url: str) -> None:
    short = store_url.replace("ttl=600", "ttl=1")
    store = open_store(short)
    try:
        await store.save_run("run-x", {"route_name": "r"})
        await store.save("run-x", "L1", state("L1"))
        assert await store.load("run-x", "L1") is not None
        for _ in range(60):  # Redis expires lazily/actively within ~1s of the TTL
            if await store.load("run-x", "L1") is None:
                break
            await asyncio.sleep(0.1)
        assert await store.load("run-x", "L1") is None
        assert await store.load_run("run-x") is None
        assert await store.list_runs() == []
    finally:
        await store.close()


@pytest.mark.parametrize("store_url", [pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
async def test_redis_ttl_zero_means_no_expiry(store_url: str) -> None:
    store = open_store(store_url.replace("ttl=600", "ttl=0"))
    try:
        await store.save("run-p", "L1", state("L1"))
        assert await store.ttl_of("run-p") == -1  # type: ignore[attr-defined]
    finally:
        await store.close()



@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_sqlite_a_failed_commit_fails_its_waiters_and_the_store_goes_on(
        store: CheckpointStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import waystation.stores.sqlite as mod

    good = mod._upsert_sql
    monkeypatch.setattr(mod, "_upsert_sql", lambda rows: good(rows).replace("INSERT", "INSRT"))
    results = await asyncio.gather(*(store.save("run-1", f"L{i}", state(f"L{i}")) for i in range(20)),
                                   return_exceptions=True)
    assert all(isinstance(r, sqlite3.OperationalError) for r in results)
    assert [s async for s in store.iter_states("run-1")] == []  # rolled back, nothing half-written
    monkeypatch.setattr(mod, "_upsert_sql", good)
    await store.save("run-1", "L1", state("L1"))
    assert await store.load("run-1", "L1") is not None


@ALL
async def test_save_nowait_is_ordered_before_a_later_waited_save(store: CheckpointStore, store_url: str) -> None:
    for i in range(100):
        store.save_nowait("run-1", f"Q{i}", state(f"Q{i}"))  # type: ignore[attr-defined]
    await store.save("run-1", "last", state("last"))  # durable => everything queued before is durable
    fresh = store if store_url.startswith("memory") else open_store(store_url)
    try:
        assert len([s async for s in fresh.iter_states("run-1")]) == 101
    finally:
        if fresh is not store:
            await fresh.close()


@ALL
async def test_close_flushes_queued_saves(store_url: str) -> None:
    s = open_store(store_url)
    for i in range(50):
        s.save_nowait("run-1", f"Q{i}", state(f"Q{i}"))  # type: ignore[attr-defined]
    await s.close()
    if store_url.startswith("memory"):
        assert len(s._leads["run-1"]) == 50  # type: ignore[attr-defined]
        return
    again = open_store(store_url)
    try:
        assert len([x async for x in again.iter_states("run-1")]) == 50
    finally:
        await again.close()


@pytest.mark.parametrize("store_url", ["memory", "sqlite"], indirect=True)
async def test_a_failed_queued_save_surfaces_on_the_next_save(
        store: CheckpointStore, store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if store_url.startswith("sqlite"):
        import waystation.stores.sqlite as mod

        good = mod._upsert_sql
        monkeypatch.setattr(mod, "_upsert_sql", lambda rows: "NOT SQL")
    else:
        async def broken(batch: list[Any]) -> list[None]:
            raise OSError("disk on fire")

        monkeypatch.setattr(store._group, "_flush", broken)  # type: ignore[attr-defined]
    store.save_nowait("run-1", "Q1", state("Q1"))  # type: ignore[attr-defined]
    for _ in range(20):
        await asyncio.sleep(0.01)
    if store_url.startswith("sqlite"):
        monkeypatch.setattr(mod, "_upsert_sql", good)
    else:
        monkeypatch.undo()
    with pytest.raises(RuntimeError, match="earlier queued checkpoint write failed"):
        await store.save("run-1", "L2", state("L2"))
    await store.save("run-1", "L2", state("L2"))  # reported once; the store goes on
    assert await store.load("run-1", "L2") is not None


@ALL
async def test_a_queued_save_of_a_secret_fails_that_lead_only(store: CheckpointStore) -> None:
    at_once = False
    try:
        store.save_nowait("run-1", "bad", state("bad", key=SecretStr("sk-live-123")))  # type: ignore[attr-defined]
    except TypeError:
        at_once = True  # encoded at once (memory, Redis): refused on the spot
    await store.save("run-1", "good", state("good"))  # another lead is never blamed
    assert await store.load("run-1", "bad") is None
    if not at_once:  # SQLite encodes queued saves when it hands them over: that lead's next save raises
        with pytest.raises(TypeError, match="secret"):
            await store.save("run-1", "bad", state("bad"))
    await store.save("run-1", "bad", state("bad"))
    assert await store.load("run-1", "good") is not None and await store.load("run-1", "bad") is not None


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_sqlite_a_dead_writer_fails_saves_instead_of_hanging(store: CheckpointStore) -> None:
    assert isinstance(store, SQLiteStore)
    store._ops.put(None)  # the writer thread stops, as if it had died
    await asyncio.to_thread(store._thread.join)
    with pytest.raises(RuntimeError, match="writer thread has stopped"):
        await asyncio.wait_for(store.save("run-1", "L1", state("L1")), 5)
    store.save_nowait("run-1", "L2", state("L2"))
    await asyncio.sleep(0.01)
    with pytest.raises(RuntimeError, match="writer thread has stopped"):
        await asyncio.wait_for(store.save("run-1", "L3", state("L3")), 5)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_sqlite_two_processes_share_one_file(store: CheckpointStore, store_url: str) -> None:
    import subprocess
    import sys

    code = f"""
import asyncio
from waystation.stores import open_store

async def main():
    s = open_store({store_url!r})
    for k in range(20):
        await asyncio.gather(*(s.save("run-other", f"L{{k}}-{{i}}", {{"status": "running", "k": k}})
                               for i in range(20)))
    await s.close()

asyncio.run(main())
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    for k in range(20):
        await asyncio.gather(*(store.save("run-mine", f"L{k}-{i}", state(f"L{k}-{i}")) for i in range(20)))
    _, err = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 0, err.decode()
    assert len([s async for s in store.iter_states("run-mine")]) == 400
    assert len([s async for s in store.iter_states("run-other")]) == 400
