"""FakeVendor: declared replies, sequences, delays and faults over a real socket; request log;
secret checks; and the harness running a station against it through the real engine."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import httpx
import pytest
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict
from waystation import Outcome, RetryPolicy, ServerError, Station, StationSettings, StepContext, TransientError
from waystation.testing import FakeVendor, Reply, run_station
from waystation.testing.fake_vendor import SecretLeak


def test_json_text_status_headers_and_patterns(fake_vendor: FakeVendor) -> None:
    fake_vendor.json("/v2/number_lookup/{phone}", {"data": {"carrier": {"type": "mobile"}}},
                     headers={"x-ratelimit-remaining": "9"})
    fake_vendor.text("/page", "<html>hi</html>", content_type="text/html")
    fake_vendor.add("/gone", 404)
    fake_vendor.add("/files/*", {"any": True}, method="GET")
    fake_vendor.declare({"POST /scrub": [Reply.json({"ok": 1}, status=201)], "/arr": Reply.json([1, 2])})
    with httpx.Client(base_url=fake_vendor.url) as c:
        r = c.get("/v2/number_lookup/+14155550100")
        assert r.json()["data"]["carrier"]["type"] == "mobile"
        assert r.headers["x-ratelimit-remaining"] == "9"
        assert r.headers["content-type"] == "application/json"
        r = c.get("/page")
        assert r.text == "<html>hi</html>" and r.headers["content-type"].startswith("text/html")
        assert c.get("/gone").status_code == 404
        assert c.get("/files/a/b.csv").json() == {"any": True}
        assert c.post("/files/a").status_code == 500  # method does not match: nothing declared
        assert c.post("/scrub", json={"numbers": ["4155550100"]}).status_code == 201
        assert c.get("/arr").json() == [1, 2]
        fake_vendor.json("/vnd", {"data": 1}, headers={"content-type": "application/vnd.api+json"})
        r = c.get("/vnd")
        assert r.headers.get_list("content-type") == ["application/vnd.api+json"] and r.json() == {"data": 1}
        r = c.get("/undeclared")
        assert r.status_code == 500 and "nothing declared for GET /undeclared" in r.text
    assert [u.path for u in fake_vendor.unmatched] == ["/files/a", "/undeclared"]


def test_sequence_repeats_its_last_reply(fake_vendor: FakeVendor) -> None:
    fake_vendor.sequence("/flaky", [500, Reply.json({"e": 1}, status=429, headers={"Retry-After": "1"}),
                                    {"ok": True}])
    with httpx.Client(base_url=fake_vendor.url) as c:
        codes = [c.get("/flaky").status_code for _ in range(5)]
    assert codes == [500, 429, 200, 200, 200]
    assert fake_vendor.count("/flaky") == 5


def test_requests_are_recorded(fake_vendor: FakeVendor) -> None:
    fake_vendor.json("/v1/scrub", {"ok": True}, method="POST")
    with httpx.Client(base_url=fake_vendor.url) as c:
        c.post("/v1/scrub", params={"type": "carrier", "n": "2"}, json={"phones": ["+14155550100"]},
               headers={"X-Request-Id": "abc"})
        c.get("/other")
    first = fake_vendor.calls("/v1/scrub")[0]
    assert first.method == "POST" and first.path == "/v1/scrub"
    assert first.args == {"type": "carrier", "n": "2"} and first.query_string == "type=carrier&n=2"
    assert first.header("x-request-id") == "abc"
    assert first.json() == {"phones": ["+14155550100"]}
    assert first.url == "/v1/scrub?type=carrier&n=2"
    assert fake_vendor.counts() == {"POST /v1/scrub": 1, "GET /other": 1}
    assert fake_vendor.count(method="GET") == 1
    fake_vendor.assert_called("/v1/scrub", times=1)
    with pytest.raises(AssertionError, match="expected any method /v1/scrub 2 time"):
        fake_vendor.assert_called("/v1/scrub", times=2)
    fake_vendor.reset_log()
    assert fake_vendor.count() == 0


def test_delays_and_faults(fake_vendor: FakeVendor) -> None:
    fake_vendor.json("/slow", {"ok": True}, delay=0.5)
    fake_vendor.fault("/reset", "reset")
    fake_vendor.fault("/trickle", "slow_body", data={"ok": True}, chunk_delay=0.2)
    fake_vendor.fault("/garbage", "malformed_json")
    fake_vendor.fault("/cut", "truncated", data={"data": "x" * 100})
    with httpx.Client(base_url=fake_vendor.url, timeout=httpx.Timeout(0.1)) as c:
        with pytest.raises(httpx.ReadTimeout):
            c.get("/slow")
        with pytest.raises(httpx.RemoteProtocolError):
            c.get("/reset")
        with pytest.raises(httpx.ReadTimeout):
            c.get("/trickle")  # the headers come at once, the body too slowly for the read timeout
        r = c.get("/garbage")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        with pytest.raises(ValueError):
            r.json()
        with pytest.raises(httpx.RemoteProtocolError, match=r"incomplete|complete message body"):
            c.get("/cut")
    with httpx.Client(base_url=fake_vendor.url, timeout=5) as c:
        assert c.get("/trickle").json() == {"ok": True}  # with patience the body arrives whole
    assert fake_vendor.count() == 6


def test_assert_no_secret_checks_url_query_body_headers_and_logs(fake_vendor: FakeVendor) -> None:
    secret = "sk-live-abc/123+x"
    fake_vendor.json("*", {"ok": True})
    with httpx.Client(base_url=fake_vendor.url) as c:
        c.get("/ok", headers={"Authorization": f"Bearer {secret}", "X-RapidAPI-Key": secret})
    fake_vendor.assert_no_secret(secret)  # auth headers are where a key belongs
    fake_vendor.assert_no_secret(SecretStr(secret))

    cases: list[tuple[str, dict[str, Any]]] = [
        ("in the URL path", {"url": f"/keys/{secret}"}),
        ("in the query string", {"url": "/q", "params": {"token": secret}}),
        ("in the request body", {"url": "/b", "method": "POST", "data": {"k": secret}}),
        ("in header 'X-Trace'", {"url": "/h", "headers": {"X-Trace": secret}}),
    ]
    for expected, req in cases:
        fake_vendor.reset_log()
        with httpx.Client(base_url=fake_vendor.url) as c:
            c.request(req.pop("method", "GET"), req.pop("url"), **req)
        with pytest.raises(SecretLeak, match=expected) as info:
            fake_vendor.assert_no_secret(secret)
        assert secret not in str(info.value)
    fake_vendor.reset_log()
    logging.getLogger("some.station").debug("calling with %s", secret)
    with pytest.raises(SecretLeak, match="log line"):
        fake_vendor.assert_no_secret(secret)
    fake_vendor.secret_leaks(secret, allow_in=("query", "body"))


class LookupSettings(StationSettings):
    """Settings."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)
    api_key: SecretStr = SecretStr("")
    base_url: str = ""


class Lookup(Station):
    """Looks a phone up; retries 5xx."""

    name = "Lookup"
    requires = ("phone",)
    provides: ClassVar[dict[str, Any]] = {"line_type": str}
    cost = 0.001
    retry = RetryPolicy(max_attempts=3)
    timeout = 0.3
    Settings = LookupSettings

    async def process(self, ctx: StepContext) -> Outcome:
        s = self.settings
        assert isinstance(s, LookupSettings)
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {s.api_key.get_secret_value()}"}) as c:
            try:
                r = await c.get(f"{s.base_url}/lookup/{ctx.data['phone']}")
            except httpx.TransportError as exc:
                raise TransientError(f"transport: {type(exc).__name__}") from None
        if r.status_code >= 500:
            raise ServerError(f"vendor answered {r.status_code}", r.status_code)
        return Outcome({"line_type": r.json()["line_type"]}, cost=0.001)


SETTINGS = {"api_key": "k-123", "base_url": "{vendor_url}"}


async def test_run_station_against_the_fake_vendor_retries_a_500(fake_vendor: FakeVendor) -> None:
    fake_vendor.sequence("/lookup/{phone}", [500, Reply.reset(), {"line_type": "mobile"}])
    run = await run_station(Lookup, {"phone": "+14155550100"},
                            settings={**SETTINGS, "base_url": fake_vendor.url})
    assert run.record.status == "succeeded" and run.record.attempts == 3
    assert run.fields == {"line_type": "mobile"}
    assert fake_vendor.count("/lookup/{phone}") == 3
    fake_vendor.assert_no_secret("k-123")


async def test_a_slow_vendor_times_the_step_out(fake_vendor: FakeVendor) -> None:
    fake_vendor.json("/lookup/{phone}", {"line_type": "mobile"}, delay=1.0)
    run = await run_station(Lookup, {"phone": "+14155550100"},
                            settings={**SETTINGS, "base_url": fake_vendor.url}, step={"retry": {"max_attempts": 1}})
    assert run.record.status == "failed" and run.record.error_category == "timeout"
