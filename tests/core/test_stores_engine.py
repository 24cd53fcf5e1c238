"""The engine on a real checkpoint store: a lead interrupted mid-call resumes in a fresh engine on
the same store; completed steps never re-run; in-doubt calls follow recheck / repay / skip; the
budget ledger equals vendor calls x price; secrets never reach the store.

The "crash" is an asyncio cancellation (a BaseException) of the lead while the paid vendor call is
in flight, after the engine durably saved its intent — everything a killed process would leave.
Runs against memory, SQLite and Redis (marker ``redis``).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr
from services import KINDS as STORE_KINDS
from waystation import Engine, Outcome, Station, StationSettings, StepContext
from waystation.budget import Budget
from waystation.stores import budget_ledger, open_store

PRICE = 0.25


class Vendor:
    """The fake paid vendor's books: every call it was paid for, and a lookup cache."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.free: dict[str, int] = {}
        self.cache: dict[str, str] = {}
        self.hang = False
        self.hang_free = False
        self.entered = asyncio.Event()
        self.recheck_answers = True

    def paid(self) -> int:
        return sum(self.calls.values())


VENDOR = Vendor()


class Identity(Station):
    """Free: normalises the name."""

    name = "Identity"
    provides: ClassVar[dict[str, Any]] = {"full_name": str}

    async def process(self, ctx: StepContext) -> Outcome:
        VENDOR.free["Identity"] = VENDOR.free.get("Identity", 0) + 1
        return Outcome({"full_name": f"{ctx.data['first_name']} {ctx.data['last_name']}".title()})


class PhoneLookup(Station):
    """Paid ($0.25 a call): finds a phone. ``recheck`` asks the vendor's free cache."""

    name = "PhoneLookup"
    requires = ("full_name",)
    provides: ClassVar[dict[str, Any]] = {"phone": str}
    cost = PRICE
    in_doubt = "repay"

    async def process(self, ctx: StepContext) -> Outcome:
        VENDOR.calls[ctx.lead_id] = VENDOR.calls.get(ctx.lead_id, 0) + 1  # the vendor bills here
        phone = f"+1512555{len(VENDOR.calls):04d}"
        VENDOR.cache[ctx.lead_id] = phone
        if VENDOR.hang:
            VENDOR.entered.set()
            await asyncio.sleep(3600)  # the answer never comes back: the process dies meanwhile
        return Outcome({"phone": phone}, cost=PRICE)

    async def recheck(self, ctx: StepContext) -> Outcome | None:
        if not VENDOR.recheck_answers or ctx.lead_id not in VENDOR.cache:
            return None
        return Outcome({"phone": VENDOR.cache[ctx.lead_id]})


class LineType(Station):
    """Free: classifies the phone (hangs when ``VENDOR.hang_free`` is set)."""

    name = "LineType"
    requires = ("phone",)
    provides: ClassVar[dict[str, Any]] = {"line_type": str}

    async def process(self, ctx: StepContext) -> Outcome:
        VENDOR.free["LineType"] = VENDOR.free.get("LineType", 0) + 1
        if VENDOR.hang_free:
            VENDOR.entered.set()
            await asyncio.sleep(3600)
        return Outcome({"line_type": "mobile"})


STATIONS = [Identity, PhoneLookup, LineType]


def route(in_doubt: str | None = None, budget: float | None = None) -> str:
    policy = f"\n    in_doubt: {in_doubt}" if in_doubt else ""
    head = "name: resume-test\n" + (f"budget: {budget}\n" if budget is not None else "")
    return head + f"""steps:
  - station: Identity
  - station: PhoneLookup{policy}
  - station: LineType
"""


LEAD = {"id": "L1", "first_name": "ada", "last_name": "lovelace"}


@pytest.fixture(autouse=True)
def vendor() -> Vendor:
    global VENDOR
    VENDOR = Vendor()
    return VENDOR


@pytest.fixture
def url(store_url: str) -> str:
    """A fresh store URL of the parametrized kind (see conftest.py)."""
    return store_url


KINDS = pytest.mark.parametrize("store_url", STORE_KINDS, indirect=True)


class Stores:
    """Opens "processes" on one store URL; a memory store is shared (it dies with the process)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.shared = open_store(url) if url.startswith("memory") else None
        self.opened: list[Any] = []

    def open(self) -> Any:
        if self.shared is not None:
            return self.shared
        s = open_store(self.url)
        self.opened.append(s)
        return s

    async def close(self) -> None:
        for s in self.opened:
            await s.close()
        if self.shared is not None:
            await self.shared.close()


async def crash_mid_call(stores: Stores, text: str, run_id: str) -> None:
    """Run LEAD until the paid call is in flight, then kill it (cancel) and drop the 'process'."""
    store = stores.open()
    VENDOR.hang = True
    engine = Engine.from_text(text, STATIONS, checkpointer=store, run_id=run_id)
    task = asyncio.ensure_future(engine.run(LEAD))
    await asyncio.wait_for(VENDOR.entered.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await engine.close()
    VENDOR.hang = False
    VENDOR.entered = asyncio.Event()


async def resume(stores: Stores, text: str, run_id: str, batch: Budget | None = None) -> Any:
    store = stores.open()
    async with Engine.from_text(text, STATIONS, checkpointer=store, run_id=run_id, batch_budget=batch) as engine:
        return await engine.run(LEAD)


@KINDS
async def test_the_crash_leaves_a_durable_intent_and_the_ledger_counts_it(url: str) -> None:
    stores = Stores(url)
    try:
        await crash_mid_call(stores, route(), "run-1")
        reader = stores.open()
        saved = await reader.load("run-1", "L1")
        assert saved is not None and saved["status"] == "running"
        assert saved["steps"]["Identity"]["status"] == "succeeded"
        phone = saved["steps"]["PhoneLookup"]
        assert phone["intent"] is True and phone["pending_cost"] == PRICE
        ledger = await budget_ledger(reader, "run-1")
        assert ledger.total_micros == VENDOR.paid() * round(PRICE * 1e6) == 250_000
        assert len(ledger.intents) == 1 and ledger.spent_micros == 0
        dead = await budget_ledger(reader, "run-1", lease_seconds=0.0, now=saved["saved_at"] + 1)
        assert dead.in_doubt_calls == 1
    finally:
        await stores.close()


@KINDS
async def test_repay_calls_again_and_counts_both_calls(url: str) -> None:
    stores = Stores(url)
    try:
        await crash_mid_call(stores, route("repay"), "run-1")
        result = await resume(stores, route("repay"), "run-1")
        assert result.status == "succeeded" and result.resumed
        assert VENDOR.free == {"Identity": 1, "LineType": 1}  # the completed step did not re-run
        assert VENDOR.calls == {"L1": 2}
        rec = result.steps["PhoneLookup"]
        assert rec.status == "succeeded" and rec.in_doubt and rec.cost == pytest.approx(2 * PRICE)
        assert result.data["phone"] and result.data["line_type"] == "mobile"
        assert result.total_cost == pytest.approx(2 * PRICE)
        ledger = await budget_ledger(stores.open(), "run-1")
        assert ledger.total_micros == ledger.spent_micros == VENDOR.paid() * 250_000
        assert ledger.intents == [] and ledger.finished == 1
    finally:
        await stores.close()


@KINDS
async def test_skip_leaves_the_field_missing_with_reason_in_doubt(url: str) -> None:
    stores = Stores(url)
    try:
        await crash_mid_call(stores, route("skip"), "run-1")
        result = await resume(stores, route("skip"), "run-1")
        assert VENDOR.calls == {"L1": 1} and VENDOR.free == {"Identity": 1}
        rec = result.steps["PhoneLookup"]
        assert rec.status == "skipped" and rec.reason == "in_doubt" and rec.in_doubt
        assert "phone" not in result.data
        assert result.steps["LineType"].reason == "missing_requirements"
        assert result.total_cost == pytest.approx(PRICE)  # the lost call is counted as paid
        ledger = await budget_ledger(stores.open(), "run-1")
        assert ledger.total_micros == VENDOR.paid() * 250_000
    finally:
        await stores.close()


@KINDS
async def test_recheck_asks_the_free_status_and_does_not_pay_twice(url: str) -> None:
    stores = Stores(url)
    try:
        await crash_mid_call(stores, route("recheck"), "run-1")
        lost_phone = VENDOR.cache["L1"]
        result = await resume(stores, route("recheck"), "run-1")
        assert VENDOR.calls == {"L1": 1}
        rec = result.steps["PhoneLookup"]
        assert rec.status == "succeeded" and rec.in_doubt and rec.cost == pytest.approx(PRICE)
        assert result.data["phone"] == lost_phone and result.data["line_type"] == "mobile"
        ledger = await budget_ledger(stores.open(), "run-1")
        assert ledger.total_micros == VENDOR.paid() * 250_000
    finally:
        await stores.close()


@KINDS
async def test_recheck_that_cannot_tell_skips_in_doubt(url: str, vendor: Vendor) -> None:
    stores = Stores(url)
    try:
        await crash_mid_call(stores, route("recheck"), "run-1")
        vendor.recheck_answers = False
        result = await resume(stores, route("recheck"), "run-1")
        assert vendor.calls == {"L1": 1}
        assert result.steps["PhoneLookup"].reason == "in_doubt" and "phone" not in result.data
    finally:
        await stores.close()


@KINDS
async def test_a_finished_lead_is_returned_as_saved_without_any_call(url: str) -> None:
    stores = Stores(url)
    try:
        first = await resume(stores, route(), "run-1")
        assert first.status == "succeeded" and VENDOR.calls == {"L1": 1}
        again = await resume(stores, route(), "run-1")
        assert again.status == "succeeded" and again.data == first.data
        assert VENDOR.calls == {"L1": 1} and VENDOR.free == {"Identity": 1, "LineType": 1}
        other_run = await resume(stores, route(), "run-2")  # another run id is another run
        assert other_run.status == "succeeded" and VENDOR.calls == {"L1": 2}
    finally:
        await stores.close()


@KINDS
async def test_a_restored_batch_budget_holds_the_intent_until_the_lead_resumes(url: str) -> None:
    stores = Stores(url)
    try:
        await crash_mid_call(stores, route("repay"), "run-1")
        ledger = await budget_ledger(stores.open(), "run-1")
        batch = ledger.restore(Budget(0.50, name="batch"))
        assert batch.spent == 0 and batch.reserved == pytest.approx(PRICE)
        assert batch.remaining == pytest.approx(0.25)  # a killed process leaked nothing, overshoots nothing
        result = await resume(stores, route("repay"), "run-1", batch)
        assert result.status == "succeeded"
        assert batch.reserved == 0  # the restored hold was released when the step resumed
        assert batch.spent == pytest.approx(VENDOR.paid() * PRICE) == pytest.approx(0.50)
        assert batch.remaining == pytest.approx(0.0)
    finally:
        await stores.close()


@KINDS
async def test_many_leads_in_flight_share_commits(url: str) -> None:
    stores = Stores(url)
    try:
        store = stores.open()
        async with Engine.from_text(route(), STATIONS, checkpointer=store, run_id="run-1") as engine:
            leads = [{"id": f"L{i}", "first_name": "a", "last_name": f"b{i}"} for i in range(200)]
            results = await asyncio.gather(*(engine.run(lead) for lead in leads))
        assert all(r.status == "succeeded" for r in results)
        stats = store.stats
        assert stats.saves >= 200 * 4  # 3 steps + an intent + the end, per lead
        assert stats.transactions < stats.saves / 5
        ledger = await budget_ledger(store, "run-1")
        assert ledger.leads == ledger.finished == 200
        assert ledger.total_micros == VENDOR.paid() * 250_000 == 200 * 250_000
    finally:
        await stores.close()


class KeyedSettings(StationSettings):
    """A vendor key."""

    api_key: SecretStr
    region: str = "us"


class KeyedLookup(Station):
    """Paid; its error message carries its key (the engine must redact it)."""

    name = "KeyedLookup"
    provides: ClassVar[dict[str, Any]] = {"score": int}
    cost = 0.01
    Settings = KeyedSettings

    async def process(self, ctx: StepContext) -> Outcome:
        key = self.settings.api_key.get_secret_value()  # type: ignore[attr-defined]
        if ctx.data.get("fail"):
            raise RuntimeError(f"GET https://vendor.test/score?key={key} returned 500")
        return Outcome({"score": 7}, cost=0.01)


SECRET = "sk-live-5f1c0ffee-DO-NOT-STORE"


async def raw_bytes(url: str, store: Any) -> bytes:
    """Everything the store holds, as raw bytes."""
    if url.startswith("sqlite"):
        await store.close()
        path = store.path
        return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))
    if url.startswith("redis"):
        client = store.client
        out = []
        async for key in client.scan_iter(f"{store.prefix}:*"):
            kind = (await client.type(key)).decode()
            if kind == "hash":
                out.extend(k + v for k, v in (await client.hgetall(key)).items())
            elif kind == "zset":
                out.extend(await client.zrange(key, 0, -1))
        return b"".join(out)
    return "".join(t for leads in store._leads.values() for t in leads.values()).encode() + \
        "".join(m for m, _, _ in store._runs.values()).encode()


@KINDS
async def test_a_secret_setting_never_reaches_the_store(url: str) -> None:
    text = f"""name: secret-test
steps:
  - station: KeyedLookup
    settings:
      api_key: {SECRET}
"""
    store = open_store(url)
    try:
        async with Engine.from_text(text, [KeyedLookup], checkpointer=store, run_id="run-s") as engine:
            ok = await engine.run({"id": "ok"})
            bad = await engine.run({"id": "bad", "fail": "yes"})
        assert ok.status == "succeeded" and bad.steps["KeyedLookup"].status == "failed"
        assert "***" in (bad.steps["KeyedLookup"].error or "")
        await store.save_run("run-s", {"route_name": "secret-test", "checkpoint": url})
        blob = await raw_bytes(url, store)
        assert b"returned 500" in blob  # the failure was saved ...
        assert SECRET.encode() not in blob  # ... but never the key
        assert b"sk-live" not in blob
    finally:
        await store.close()



@KINDS
async def test_a_crash_in_a_free_step_after_a_paid_one_never_rebuys_it(url: str, vendor: Vendor) -> None:
    stores = Stores(url)
    try:
        store = stores.open()
        vendor.hang_free = True
        engine = Engine.from_text(route("repay"), STATIONS, checkpointer=store, run_id="run-1")
        task = asyncio.ensure_future(engine.run(LEAD))
        await asyncio.wait_for(vendor.entered.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await engine.close()
        vendor.hang_free = False
        result = await resume(stores, route("repay"), "run-1")
        assert result.status == "succeeded"
        assert vendor.calls == {"L1": 1}  # the paid result was saved (and waited for) before going on
        assert vendor.free == {"Identity": 1, "LineType": 2}  # the interrupted free step ran again
        assert not result.steps["PhoneLookup"].in_doubt
        ledger = await budget_ledger(stores.open(), "run-1")
        assert ledger.total_micros == vendor.paid() * 250_000
    finally:
        await stores.close()
