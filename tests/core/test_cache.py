"""The lookup cache's conformance suite: every backend (SQLite, Redis) behaves the same."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from services import REDIS_URL, purge_prefix, redis_available
from waystation.cache import CacheEntry, LookupCache, open_cache, parse_ttl
from waystation.cache.keys import answer_settings, cache_key, normalised_inputs, subject_token, subject_tokens
from waystation.station import StationSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def cache(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[LookupCache, Clock]]:
    clock = Clock()
    if request.param == "sqlite":
        c = open_cache(f"sqlite:///{tmp_path / 'cache.db'}", clock=clock)
        yield c, clock
        await c.close()
    else:
        await redis_available()
        prefix = f"wstest-cache-{uuid.uuid4().hex[:10]}"
        c = open_cache(f"{REDIS_URL}?prefix={prefix}", clock=clock)
        yield c, clock
        await c.close()
        await purge_prefix(prefix)


def entry(clock: Clock, station: str = "Phone", ttl: float = 3600, **fields: str) -> CacheEntry:
    inputs = {"name": "Jane Doe", "email": "Jane.Doe@Example.com"}
    return CacheEntry(station=station, fields=dict(fields) or {"phone": "+14155550100"}, stored_at=clock.now,
                      expires_at=clock.now + ttl, misses={"email": "not found"}, reason="ok",
                      subjects=subject_tokens(inputs, fields or {"phone": "+14155550100"}, lead_id="L1"))


async def test_put_then_get_round_trips(cache: tuple[LookupCache, Clock]) -> None:
    c, clock = cache
    assert await c.get("Phone", "k1") is None
    await c.put("k1", entry(clock))
    clock.now += 10
    got = await c.get("Phone", "k1")
    assert got is not None
    assert got.fields == {"phone": "+14155550100"}
    assert got.misses == {"email": "not found"}
    assert got.reason == "ok"
    assert got.age(clock.now) == pytest.approx(10)
    assert await c.get("Other", "k1") is None  # keys are per station


async def test_entry_expires_at_its_ttl(cache: tuple[LookupCache, Clock]) -> None:
    c, clock = cache
    await c.put("k1", entry(clock, ttl=60))
    clock.now += 59
    assert await c.get("Phone", "k1") is not None
    clock.now += 1
    assert await c.get("Phone", "k1") is None
    [st] = await c.stats()
    assert (st.entries, st.expired, st.hits, st.misses, st.writes) == (0, 1, 1, 1, 1)
    assert await c.prune() == 1
    [st] = await c.stats()
    assert (st.entries, st.expired) == (0, 0)


async def test_put_replaces(cache: tuple[LookupCache, Clock]) -> None:
    c, clock = cache
    await c.put("k1", entry(clock, phone="+14155550100"))
    clock.now += 5
    await c.put("k1", entry(clock, phone="+14155550199"))
    got = await c.get("Phone", "k1")
    assert got is not None and got.fields == {"phone": "+14155550199"} and got.age(clock.now) == 0


async def test_stats_prune_and_clear_per_station(cache: tuple[LookupCache, Clock]) -> None:
    c, clock = cache
    for i in range(3):
        await c.put(f"p{i}", entry(clock, "Phone", ttl=100))
    await c.put("e0", entry(clock, "Email", ttl=10))
    clock.now += 20
    stats = {s.station: s for s in await c.stats()}
    assert (stats["Phone"].entries, stats["Phone"].expired) == (3, 0)
    assert (stats["Email"].entries, stats["Email"].expired) == (0, 1)
    assert stats["Phone"].oldest_age == pytest.approx(20)
    assert [s.station for s in await c.stats("Phone")] == ["Phone"]
    assert await c.prune("Phone") == 0
    assert await c.prune("Email") == 1
    assert await c.clear("Phone") == 3
    assert await c.get("Phone", "p0") is None
    assert await c.clear() == 0


async def test_forget_erases_every_entry_holding_the_person(cache: tuple[LookupCache, Clock]) -> None:
    c, clock = cache
    await c.put("k1", entry(clock, "Phone", phone="+1 (415) 555-0100"))
    await c.put("k2", entry(clock, "Carrier", carrier="att"))  # same input e-mail: same person
    other = CacheEntry(station="Phone", fields={"phone": "+12125550000"}, stored_at=clock.now,
                       expires_at=clock.now + 100, subjects=subject_tokens({"name": "Bob Roe"}, lead_id="L2"))
    await c.put("k3", other)
    # by a returned phone number, however it is written
    assert await c.forget([subject_token("phone", "4155550100")], dry_run=True) == 1
    assert await c.get("Phone", "k1") is not None
    assert await c.forget([subject_token("phone", "4155550100")]) == 1
    assert await c.get("Phone", "k1") is None
    assert await c.get("Carrier", "k2") is not None
    # by an input e-mail (compared in lower case)
    assert await c.forget([subject_token("email", "jane.doe@example.com")]) == 1
    assert await c.get("Carrier", "k2") is None
    # by the lead that stored it
    assert await c.forget([subject_token("lead", "L2")]) == 1
    assert await c.forget([]) == 0


def test_ttl_parsing() -> None:
    assert parse_ttl("30d") == 30 * 86400
    assert parse_ttl("12h") == 43200
    assert parse_ttl("90s") == parse_ttl("90") == parse_ttl(90) == 90
    assert parse_ttl("2w") == 14 * 86400
    for bad in ("0d", "soon", "-1", "", True):
        with pytest.raises(ValueError):
            parse_ttl(bad)  # type: ignore[arg-type]


class S(StationSettings):
    mode: str = "full"
    key: SecretStr = SecretStr("k-123")
    region: str = "us"


def test_key_reads_only_declared_inputs_normalised_and_no_secret() -> None:
    lead = {"name": " Jane  DOE ", "city": "Boston", "notes": "called twice"}
    other = {"name": "jane doe", "city": "BOSTON", "notes": "something else"}
    a = normalised_inputs(lead, ("name", "city"))
    assert a == normalised_inputs(other, ("name", "city")) == {"name": "jane doe", "city": "boston"}
    cfg = answer_settings(S())
    assert cfg == {"mode": "full", "region": "us"}
    assert answer_settings(S(), ["mode"]) == {"mode": "full"}
    k = cache_key("Phone", "1.0", cfg, a)
    assert k == cache_key("Phone", "1.0", cfg, normalised_inputs(other, ("name", "city")))
    assert k != cache_key("Phone", "1.1", cfg, a)  # version
    assert k != cache_key("Phone", "1.0", answer_settings(S(mode="lite")), a)  # answer-changing setting
    assert k == cache_key("Phone", "1.0", answer_settings(S(key=SecretStr("other"))), a)  # a secret is not
    assert k != cache_key("Phone", "1.0", cfg, normalised_inputs({"name": "Jane Doe"}, ("name", "city")))


def test_cache_commands_stats_prune_clear(tmp_path: Path) -> None:
    import asyncio
    import json

    from click.testing import CliRunner
    from waystation.cli.main import cli

    url = f"sqlite:///{tmp_path / 'c.db'}"
    clock = Clock()

    async def fill() -> None:
        c = open_cache(url, clock=clock)
        await c.put("k1", entry(clock, "Phone", ttl=10))  # expired by the real clock long ago
        await c.put("k2", CacheEntry(station="Email", fields={"email": "a@b.c"}, stored_at=clock.now,
                                     expires_at=4_000_000_000.0))
        await c.close()

    asyncio.run(fill())
    run = CliRunner().invoke
    res = run(cli, ["cache", "stats", "--json", "--cache-url", url])
    assert res.exit_code == 0, res.output
    stats = {s["station"]: s for s in json.loads(res.output)}
    assert (stats["Phone"]["expired"], stats["Email"]["entries"]) == (1, 1)
    assert "Email" in run(cli, ["cache", "stats", "--cache-url", url]).output
    assert run(cli, ["cache", "prune", "--cache-url", url]).output.strip() == "pruned 1 expired entry"
    res = run(cli, ["cache", "clear", "--station", "Email", "--cache-url", url])
    assert res.output.strip() == "cleared 1 entry"
    left = json.loads(run(cli, ["cache", "stats", "--json", "--cache-url", url]).output)
    assert [(s["station"], s["entries"], s["expired"], s["writes"]) for s in left] == [("Phone", 0, 0, 1)]
    assert run(cli, ["cache", "clear", "--cache-url", url]).output.strip() == "cleared 0 entries"
    assert run(cli, ["cache", "stats", "--cache-url", url]).output.strip() == "the cache is empty"
    assert run(cli, ["cache", "stats", "--cache-url", "ftp://x"]).exit_code == 2


def test_waystation_forget_reaches_the_cache(tmp_path: Path) -> None:
    import asyncio
    import json

    from click.testing import CliRunner
    from waystation.cli.main import cli

    ck = f"sqlite:///{tmp_path / 'ck.db'}"
    clock = Clock()

    async def fill() -> None:
        c = open_cache(ck, clock=clock)
        await c.put("k1", entry(clock, "Phone", ttl=4e9, phone="+14155550100"))
        await c.put("k2", CacheEntry(station="Email", fields={"email": "x@y.z"}, stored_at=clock.now,
                                     expires_at=4e9, subjects=subject_tokens({"name": "Other"}, lead_id="L9")))
        await c.close()

    asyncio.run(fill())
    run = CliRunner().invoke
    res = run(cli, ["forget", "--phone", "415-555-0100", "--checkpoint", ck, "--dry-run", "--json"])
    assert res.exit_code == 0, res.output
    cached = [e for e in json.loads(res.output) if e["what"] == "cached vendor answers"]
    assert [e["count"] for e in cached] == [1]
    res = run(cli, ["forget", "--lead-id", "L9", "--email", "jane.doe@example.com", "--checkpoint", ck, "--json"])
    assert res.exit_code == 0, res.output
    assert [e["count"] for e in json.loads(res.output) if e["what"] == "cached vendor answers"] == [2]
    stats = json.loads(run(cli, ["cache", "stats", "--json", "--cache-url", ck]).output)
    assert sum(s["entries"] for s in stats) == 0


async def test_used_creates_nothing(cache: tuple[LookupCache, Clock]) -> None:
    c, clock = cache
    assert not await c.used()
    await c.put("k", entry(clock))
    assert await c.used()
