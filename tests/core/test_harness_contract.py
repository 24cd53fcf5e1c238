"""check_station_contract: a well-behaved station passes; each deliberately broken one is caught."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict
from waystation import Outcome, Station, StationSettings, StepContext
from waystation.testing import ContractViolation, FakeVendor, Reply, check_station_contract
from waystation.testing.contract import check_station_contract_async

LEAD = {"phone": "+14155550100", "city": "Austin", "tags": ["a", "b"], "extra": {"n": 1}}


class LookupSettings(StationSettings):
    """Settings of the test lookup station."""

    model_config = SettingsConfigDict(env_prefix="WAYSTATION_TESTLOOKUP_", extra="forbid", frozen=True)
    api_key: SecretStr = SecretStr("")
    base_url: str = "http://127.0.0.1:9"


async def _get(url: str, headers: dict[str, str] | None = None) -> Any:
    import httpx

    async with httpx.AsyncClient(timeout=5) as client:
        resp = await client.get(url, headers=headers)
        resp.raise_for_status()
        return resp.json()


class GoodLookup(Station):
    """Looks up a phone's line type at a (fake) paid vendor. Costs $0.002 per call."""

    name = "GoodLookup"
    requires = ("phone",)
    optional = ("city",)
    provides: ClassVar[dict[str, Any]] = {"line_type": str, "carrier": str}
    cost = 0.002
    Settings = LookupSettings

    async def process(self, ctx: StepContext) -> Outcome:
        s = self.settings
        assert isinstance(s, LookupSettings)
        city = ctx.get("city")
        body = await _get(f"{s.base_url}/v2/lookup/{ctx.data['phone']}",
                          headers={"Authorization": f"Bearer {s.api_key.get_secret_value()}"})
        ctx.log.info("looked up a number near %s", city)
        return Outcome({"line_type": body["line_type"], "carrier": body["carrier"]}, cost=0.002)


SETTINGS = {"api_key": "sk-test-SECRET-1234", "base_url": "{vendor_url}"}
RESPONSES = {"/v2/lookup/{phone}": Reply.json({"line_type": "mobile", "carrier": "T-Mobile"})}


def check(station: type[Station], **kwargs: Any) -> Any:
    kwargs.setdefault("settings", SETTINGS)
    kwargs.setdefault("fake_responses", RESPONSES)
    return check_station_contract(station, LEAD, raise_on_violation=False, **kwargs)


def test_a_good_station_passes() -> None:
    report = check(GoodLookup)
    assert report.ok, str(report)
    assert report.requests == 1
    assert report.fields_read == ["city", "phone"]
    assert report.outcome is not None and report.outcome.fields["line_type"] == "mobile"
    # the cancellation was really exercised mid-call (the vendor held the answer)
    assert not any("not exercised" in n for n in report.notes)


def test_raises_with_a_report_listing_each_violation() -> None:
    class Broken(GoodLookup):
        async def process(self, ctx: StepContext) -> Outcome:
            ctx.data["phone"] = "x"  # type: ignore[index]
            return Outcome({"age": 3})

    with pytest.raises(ContractViolation) as info:
        check_station_contract(Broken, LEAD, settings=SETTINGS, fake_responses=RESPONSES)
    text = str(info.value)
    assert "[docstring]" in text and "[mutation]" in text
    assert info.value.report.checks_failed() >= {"docstring", "mutation"}


def test_mutating_the_lead_is_caught_top_level_and_nested() -> None:
    class TopLevel(GoodLookup):
        """Writes into ctx.data."""

        async def process(self, ctx: StepContext) -> Outcome:
            ctx.data["phone"] = "+10000000000"  # type: ignore[index]
            return Outcome()

    class Nested(GoodLookup):
        """Appends to a list inside the lead and edits a nested dict."""

        async def process(self, ctx: StepContext) -> Outcome:
            ctx.data["phone"]
            ctx.data.get("city")
            return Outcome()

    class NestedReal(GoodLookup):
        """Changes nested values it reads through an allowed field."""

        optional = ("city", "tags", "extra")

        async def process(self, ctx: StepContext) -> Outcome:
            ctx.data["tags"].append("c")
            ctx.data["extra"]["n"] = 2
            return Outcome()

    r1 = check(TopLevel)
    assert "mutation" in r1.checks_failed(), str(r1)
    assert "ctx.data['phone'] = ..." in str(r1)
    assert check(Nested).ok
    r3 = check(NestedReal)
    msgs = [v.message for v in r3.violations if v.check == "mutation"]
    assert msgs and "tags" in msgs[0] and "extra.n" in msgs[0], str(r3)


def test_undeclared_field_and_wrong_type_are_caught() -> None:
    class Undeclared(GoodLookup):
        """Returns a field it does not declare."""

        async def process(self, ctx: StepContext) -> Outcome:
            await _get(f"{self.settings.base_url}/v2/lookup/{ctx.data['phone']}")  # type: ignore[attr-defined]
            return Outcome({"line_type": "mobile", "fraud_score": 0.3}, cost=0.002)

    class WrongType(GoodLookup):
        """Returns carrier as a number."""

        async def process(self, ctx: StepContext) -> Outcome:
            return Outcome({"line_type": "mobile", "carrier": 42})

    r = check(Undeclared)
    assert [v.check for v in r.violations] == ["outcome"], str(r)
    assert "'fraud_score'" in r.violations[0].message
    r = check(WrongType)
    assert any(v.check == "outcome" and "carrier" in v.message and "int" in v.message for v in r.violations)


def test_api_key_in_the_url_is_caught() -> None:
    class KeyInUrl(GoodLookup):
        """Sends its key as a query parameter."""

        async def process(self, ctx: StepContext) -> Outcome:
            s = self.settings
            assert isinstance(s, LookupSettings)
            body = await _get(f"{s.base_url}/v2/lookup/{ctx.data['phone']}?api_key={s.api_key.get_secret_value()}")
            return Outcome({"line_type": body["line_type"]}, cost=0.002)

    r = check(KeyInUrl)
    leaks = [v.message for v in r.violations if v.check == "secrets"]
    assert any("query string" in m for m in leaks), str(r)
    assert "sk-test-SECRET-1234" not in str(r)
    # where the vendor's API really takes the key in the query, that can be allowed (logs still checked)
    r = check(KeyInUrl, allow_secret_in=("query",))
    assert not [v for v in r.violations if "query string" in v.message], str(r)


def test_secret_in_a_log_line_or_header_is_caught() -> None:
    class Chatty(GoodLookup):
        """Logs its key and sends it in a custom header."""

        async def process(self, ctx: StepContext) -> Outcome:
            s = self.settings
            assert isinstance(s, LookupSettings)
            logging.getLogger("chatty").debug("using key %s", s.api_key.get_secret_value())
            body = await _get(f"{s.base_url}/v2/lookup/{ctx.data['phone']}",
                              headers={"X-Debug": s.api_key.get_secret_value()})
            return Outcome({"line_type": body["line_type"]}, cost=0.002)

    r = check(Chatty)
    leaks = " | ".join(v.message for v in r.violations if v.check == "secrets")
    assert "header 'X-Debug'" in leaks, str(r)
    # the core masks every secret setting value in every log record (waystation.redact), so the
    # logged key never reaches a log line: not a leak any more
    assert "log line" not in leaks, str(r)


def test_plain_str_secret_setting_is_flagged() -> None:
    class PlainSettings(StationSettings):
        """Bad: the key is a plain str."""

        model_config = SettingsConfigDict(extra="forbid", frozen=True)
        api_key: str = ""
        base_url: str = ""

    class Plain(GoodLookup):
        """Uses plain settings."""

        Settings = PlainSettings

        async def process(self, ctx: StepContext) -> Outcome:
            return Outcome({"line_type": "mobile"})

    r = check(Plain, fake_responses={})
    assert any(v.check == "secrets" and "'api_key'" in v.message for v in r.violations), str(r)


def test_reading_undeclared_fields_and_whole_lead() -> None:
    class Nosy(GoodLookup):
        """Reads a field it does not declare."""

        async def process(self, ctx: StepContext) -> Outcome:
            ctx.get("email")
            return Outcome({"line_type": "mobile"})

    class Everything(GoodLookup):
        """Copies the whole lead."""

        async def process(self, ctx: StepContext) -> Outcome:
            dict(ctx.data)
            return Outcome({"line_type": "mobile"})

    r = check(Nosy)
    assert [v.check for v in r.violations] == ["reads"] and "'email'" in r.violations[0].message, str(r)
    assert "reads" in check(Everything).checks_failed()
    r = check(Everything, reads_whole_lead="saves the lead")
    assert r.ok and any("saves the lead" in n for n in r.notes)


def test_paid_vendor_without_cost_and_cost_overrun() -> None:
    class Free(GoodLookup):
        """Calls the vendor but declares no cost."""

        cost = 0.0

        async def process(self, ctx: StepContext) -> Outcome:
            body = await _get(f"{self.settings.base_url}/v2/lookup/{ctx.data['phone']}")  # type: ignore[attr-defined]
            return Outcome({"line_type": body["line_type"]})

    class ReallyFree(Free):
        """Calls a free public API and says so."""

        paid = False

    class Overrun(GoodLookup):
        """Reports more cost than it declares."""

        async def process(self, ctx: StepContext) -> Outcome:
            return Outcome({"line_type": "mobile"}, cost=0.01)

    class PaidNoCost(GoodLookup):
        """Paid but cost 0."""

        paid = True
        cost = 0.0

        async def process(self, ctx: StepContext) -> Outcome:
            return Outcome({"line_type": "mobile"})

    r = check(Free)
    assert [v.check for v in r.violations] == ["cost"] and "1 HTTP request" in r.violations[0].message, str(r)
    assert check(ReallyFree).ok
    assert "cost" in check(Overrun).checks_failed()
    assert "cost" in check(PaidNoCost).checks_failed()


def test_cancellation_problems_are_caught() -> None:
    class Swallows(GoodLookup):
        """Swallows CancelledError."""

        async def process(self, ctx: StepContext) -> Outcome:
            try:
                await _get(f"{self.settings.base_url}/v2/lookup/{ctx.data['phone']}")  # type: ignore[attr-defined]
            except asyncio.CancelledError:
                return Outcome({"line_type": "unknown"})
            return Outcome({"line_type": "mobile"}, cost=0.002)

    class Leaks(GoodLookup):
        """Starts a background task it never cancels."""

        async def process(self, ctx: StepContext) -> Outcome:
            self._bg = asyncio.ensure_future(asyncio.sleep(30))
            body = await _get(f"{self.settings.base_url}/v2/lookup/{ctx.data['phone']}")  # type: ignore[attr-defined]
            return Outcome({"line_type": body["line_type"]}, cost=0.002)

    class Unawaited(GoodLookup):
        """Creates a coroutine it never awaits."""

        async def process(self, ctx: StepContext) -> Outcome:
            asyncio.sleep(0)
            await _get(f"{self.settings.base_url}/v2/lookup/{ctx.data['phone']}")  # type: ignore[attr-defined]
            return Outcome({"line_type": "mobile"}, cost=0.002)

    r = check(Swallows)
    assert any("swallowed the cancellation" in v.message for v in r.violations), str(r)
    r = check(Leaks)
    assert any("left 1 task(s) running" in v.message for v in r.violations), str(r)
    r = check(Unawaited)
    assert any("never awaited" in v.message for v in r.violations), str(r)


def test_process_errors_and_static_declarations() -> None:
    class NoDoc(GoodLookup):
        async def process(self, ctx: StepContext) -> Outcome:
            raise RuntimeError(f"boom {self.settings.api_key.get_secret_value()}")  # type: ignore[attr-defined]

    NoDoc.__doc__ = None
    r = check(NoDoc)
    assert {"docstring", "process", "secrets"} <= r.checks_failed(), str(r)
    assert "sk-test-SECRET-1234" not in str(r)

    class NoProcess(Station):
        """Nothing."""

        name = "NoProcess"
        provides: ClassVar[dict[str, Any]] = {"x": str}

    assert any("not implemented" in v.message for v in check(NoProcess).violations)


async def test_callable_from_a_running_loop_and_async_form(fake_vendor: FakeVendor) -> None:
    fake_vendor.declare(RESPONSES)
    report = check_station_contract(GoodLookup, LEAD, settings=SETTINGS, vendor=fake_vendor)
    assert report.ok
    report = await check_station_contract_async(GoodLookup, LEAD, settings=SETTINGS, vendor=fake_vendor)
    assert report.ok
    assert fake_vendor.count("/v2/lookup/{phone}") >= 4


def test_local_station_without_http_passes_with_note() -> None:
    class Upper(Station):
        """Upper-cases the city. Free, local."""

        name = "Upper"
        requires = ("city",)
        provides: ClassVar[dict[str, Any]] = {"city_upper": str}

        async def process(self, ctx: StepContext) -> Outcome:
            return Outcome({"city_upper": ctx.data["city"].upper()})

    r = check_station_contract(Upper, {"city": "Austin"})
    assert r.ok and any("not exercised" in n for n in r.notes)
