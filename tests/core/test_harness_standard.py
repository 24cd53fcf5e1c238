"""StationTests: inherited standard tests run, catch broken stations, and cannot be dropped silently."""

from __future__ import annotations

import pytest
from waystation.testing import STANDARD_TESTS, StandardTestOverrideError, StationTests, skip_standard

pytest_plugins = ["pytester"]

STATIONS = '''
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from waystation import Outcome, Station, StationSettings, StepContext
from waystation.testing import Reply, StationTests, override_standard, skip_standard


class S(StationSettings):
    """Settings."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)
    api_key: SecretStr = SecretStr("")
    base_url: str = ""


class Lookup(Station):
    """Line type lookup, $0.001 per call."""

    name = "Lookup"
    requires = ("phone",)
    provides: ClassVar[dict[str, Any]] = {"line_type": str}
    cost = 0.001
    Settings = S
    KEY_IN_URL = False

    async def process(self, ctx: StepContext) -> Outcome:
        s = self.settings
        url = f"{s.base_url}/lookup/{ctx.data['phone']}"
        if self.KEY_IN_URL:
            url += f"?key={s.api_key.get_secret_value()}"
        async with httpx.AsyncClient() as c:
            r = await c.get(url, headers={"Authorization": f"Bearer {s.api_key.get_secret_value()}"})
        return Outcome({"line_type": r.json()["line_type"]}, cost=0.001)


class Leaky(Lookup):
    """Leaks its key into the URL."""

    name = "Leaky"
    KEY_IN_URL = True


class Base(StationTests):
    station_class = Lookup
    sample_lead = {"phone": "+14155550100"}
    settings = {"api_key": "key-XYZ-123", "base_url": "{vendor_url}"}
    fake_responses = {"/lookup/{phone}": Reply.json({"line_type": "mobile"})}
    expected_fields = {"line_type": "mobile"}
'''


def _setup(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(stations=STATIONS)


def test_standard_tests_pass_for_a_good_station(pytester: pytest.Pytester) -> None:
    _setup(pytester)
    pytester.makepyfile(test_good="from stations import Base\n\nclass TestLookup(Base):\n    pass\n")
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(STANDARD_TESTS))


def test_standard_tests_catch_a_key_in_the_url(pytester: pytest.Pytester) -> None:
    _setup(pytester)
    pytester.makepyfile(test_leaky="from stations import Base, Leaky\n\n"
                                   "class TestLeaky(Base):\n    station_class = Leaky\n")
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(STANDARD_TESTS) - 2, failed=2)
    result.stdout.fnmatch_lines(["*test_contract*", "*test_no_secret_leak*"])
    result.stdout.fnmatch_lines(["*in the query string*"])
    leak_lines = [line for line in result.stdout.lines if "leaked" in line]
    assert leak_lines and not any("key-XYZ-123" in line for line in leak_lines)


def test_expected_fields_are_checked(pytester: pytest.Pytester) -> None:
    _setup(pytester)
    pytester.makepyfile(test_exp="from stations import Base\n\n"
                                 "class TestLookup(Base):\n    expected_fields = {'line_type': 'voip'}\n")
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(STANDARD_TESTS) - 1, failed=1)
    result.stdout.fnmatch_lines(["*test_runs_on_sample_lead*"])


def test_overriding_without_reason_fails_collection(pytester: pytest.Pytester) -> None:
    _setup(pytester)
    pytester.makepyfile(test_override="from stations import Base\n\n"
                                      "class TestLookup(Base):\n"
                                      "    def test_contract(self):\n        pass\n")
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*StandardTestOverrideError*test_contract replaces (or removes)*"])


def test_deleting_without_reason_fails(pytester: pytest.Pytester) -> None:
    _setup(pytester)
    pytester.makepyfile(test_delete="from stations import Base\n\n"
                                    "class TestLookup(Base):\n    test_handles_cancellation = None\n")
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*test_handles_cancellation replaces (or removes)*"])


def test_explicit_reasons_are_accepted(pytester: pytest.Pytester) -> None:
    _setup(pytester)
    pytester.makepyfile(test_reasons='''
from stations import Base, Leaky
from waystation.testing import override_standard, skip_standard


class TestLookup(Base):
    station_class = Leaky
    standard_test_skips = {"test_contract": "the vendor only accepts the key as ?key="}

    @skip_standard("covered by a cassette test")
    def test_no_secret_leak(self, fake_vendor):
        raise AssertionError("never runs")

    @override_standard("checks one more field")
    def test_runs_on_sample_lead(self, fake_vendor):
        run = self.run_sample(fake_vendor)
        assert run.fields == {"line_type": "mobile"}
''')
    result = pytester.runpytest("-q", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(STANDARD_TESTS) - 2, skipped=2)
    result.stdout.fnmatch_lines(["*the vendor only accepts the key as ?key=*"])


def test_reasons_must_be_real() -> None:
    with pytest.raises(StandardTestOverrideError):
        skip_standard("  ")
    with pytest.raises(StandardTestOverrideError, match="not a standard test"):
        type("TestX", (StationTests,), {"standard_test_skips": {"test_nope": "why"}})
    with pytest.raises(StandardTestOverrideError, match="non-empty reason"):
        type("TestY", (StationTests,), {"standard_test_skips": {"test_contract": ""}})
