"""Cassette: record a (stand-in) real vendor once with secrets scrubbed, replay it with no vendor."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict
from waystation import Outcome, Station, StationSettings, StepContext
from waystation.testing import Cassette, CassetteError, FakeVendor, Reply, run_station
from waystation.testing.cassette import SCRUBBED

REAL_KEY = "live-KEY-98765"


class Settings(StationSettings):
    """Settings."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)
    api_key: SecretStr = SecretStr("")
    base_url: str = ""


class Census(Station):
    """Median income by ZIP from an API that takes its key in the query (as the Census API does)."""

    name = "Census"
    requires = ("zipcode",)
    provides: ClassVar[dict[str, Any]] = {"median_income": int}
    paid = False
    Settings = Settings

    async def process(self, ctx: StepContext) -> Outcome:
        s = self.settings
        assert isinstance(s, Settings)
        async with httpx.AsyncClient(headers={"Authorization": f"Token {s.api_key.get_secret_value()}"}) as c:
            r = await c.get(f"{s.base_url}/data/2022/acs/acs5",
                            params={"get": "B19013_001E", "for": f"zcta:{ctx.data['zipcode']}",
                                    "key": s.api_key.get_secret_value()})
            r.raise_for_status()
        rows = r.json()
        return Outcome({"median_income": int(rows[1][0])})


@pytest.fixture
def real_vendor() -> Any:
    """Stands in for the real vendor: checks the key, answers with a body that echoes it."""
    with FakeVendor() as real:
        def answer(req: Any) -> Reply:
            if req.args.get("key") != REAL_KEY:
                return Reply.json({"error": "bad key"}, status=401)
            zcta = req.args["for"].split(":")[1]
            income = {"10001": "106509", "94105": "204000"}[zcta]
            return Reply.json([["B19013_001E", "zcta"], [income, zcta]],
                              headers={"Set-Cookie": f"session={REAL_KEY}", "X-Echo": f"k={REAL_KEY}"})
        real.handle("/data/2022/acs/acs5", answer)
        yield real


async def _run(base: str, key: str, zipcode: str) -> Any:
    return await run_station(Census, {"zipcode": zipcode}, settings={"api_key": key, "base_url": base})


async def test_record_then_replay(tmp_path: Path, real_vendor: FakeVendor, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cassettes" / "census.json"
    monkeypatch.setenv("WAYSTATION_RECORD", "1")
    with FakeVendor() as proxy:
        rec = Cassette(path, real_url=real_vendor.url, secrets=[REAL_KEY])
        assert rec.mode == "record"
        base = rec.attach(proxy)
        r1 = await _run(base, REAL_KEY, "10001")
        r2 = await _run(base, REAL_KEY, "94105")
        rec.save()
    assert r1.fields == {"median_income": 106509} and r2.fields == {"median_income": 204000}
    assert real_vendor.count() == 2  # each request went to the real vendor exactly once
    text = path.read_text()
    assert REAL_KEY not in text
    doc = json.loads(text)
    first = doc["interactions"][0]
    assert first["request"]["headers"]["Authorization"] == SCRUBBED
    assert ["key", SCRUBBED] in first["request"]["query"]
    assert first["response"]["headers"]["Set-Cookie"] == SCRUBBED
    assert first["response"]["headers"]["X-Echo"] == f"k={SCRUBBED}"
    assert json.loads(first["response"]["body"])[1] == ["106509", "10001"]

    # replay: no real vendor, another key, same answers from the real bodies
    real_vendor.stop()
    monkeypatch.delenv("WAYSTATION_RECORD")
    with FakeVendor() as fake:
        play = Cassette(path, real_url=real_vendor.url, secrets=["test-key"])
        assert play.mode == "replay"
        base = play.attach(fake)
        assert (await _run(base, "test-key", "94105")).fields == {"median_income": 204000}
        assert (await _run(base, "test-key", "10001")).fields == {"median_income": 106509}
        missing = await _run(base, "test-key", "73301")
        assert missing.record.status == "failed"
        assert play.misses and "zcta%3A73301" in play.misses[0]
        assert "test-key" not in play.misses[0]
        fake.assert_no_secret("test-key", allow_in=("query",))


def test_record_needs_a_real_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAYSTATION_RECORD", "1")
    with pytest.raises(CassetteError, match="does not exist: record it once"):
        Cassette(tmp_path / "none.json")  # no real URL: replay, and there is nothing to replay
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(CassetteError, match="not a waystation cassette"):
        Cassette(tmp_path / "bad.json", record=False)


def test_repeated_requests_replay_in_order(tmp_path: Path, fake_vendor: FakeVendor) -> None:
    path = tmp_path / "seq.json"
    req = {"method": "GET", "path": "/n", "query": [], "headers": {}, "body": ""}
    path.write_text(json.dumps({"waystation_cassette": 1, "interactions": [
        {"request": req, "response": {"status": 500, "headers": {}, "body": "oops"}},
        {"request": req, "response": {"status": 200, "headers": {"Content-Type": "application/json"},
                                      "body": "{\"n\": 2}"}},
    ]}))
    base = Cassette(path).attach(fake_vendor)
    with httpx.Client(base_url=base) as c:
        assert [c.get("/n").status_code for _ in range(3)] == [500, 200, 200]
        assert c.get("/n").json() == {"n": 2}


async def test_cassette_fixture_replays(tmp_path: Path, cassette: Callable[..., str]) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"waystation_cassette": 1, "interactions": [{
        "request": {"method": "GET", "path": "/data/2022/acs/acs5",
                    "query": [["get", "B19013_001E"], ["for", "zcta:10001"], ["key", SCRUBBED]],
                    "headers": {}, "body": ""},
        "response": {"status": 200, "headers": {"Content-Type": "application/json"},
                     "body": "[[\"B19013_001E\",\"zcta\"],[\"106509\",\"10001\"]]"}}]}))
    base = cassette(path, real_url="https://api.census.gov", secrets=["k"])
    assert (await _run(base, "k", "10001")).fields == {"median_income": 106509}


async def test_a_key_with_plus_slash_equals_is_scrubbed_in_every_form(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    from urllib.parse import quote

    key = "live+KEY/98765=="
    with FakeVendor() as real:
        def answer(req: Any) -> Reply:
            if req.args.get("key") != key:
                return Reply.json({"error": "bad key"}, status=401)
            echo = f"{quote(key, safe='')} {base64.b64encode(key.encode()).decode()}"
            return Reply.json([["B19013_001E", "zcta"], ["106509", "10001"]], headers={"X-Echo": echo})
        real.handle("/data/2022/acs/acs5", answer)
        path = tmp_path / "c.json"
        monkeypatch.setenv("WAYSTATION_RECORD", "1")
        with FakeVendor() as proxy:
            rec = Cassette(path, real_url=real.url, secrets=[key])
            r = await _run(rec.attach(proxy), key, "10001")
            rec.save()
    assert r.fields == {"median_income": 106509}
    text = path.read_text()
    for form in (key, quote(key, safe=""), base64.b64encode(key.encode()).decode(), json.dumps(key)[1:-1]):
        assert form not in text, form
    assert json.loads(text)["interactions"][0]["response"]["headers"]["X-Echo"] == f"{SCRUBBED} {SCRUBBED}"
