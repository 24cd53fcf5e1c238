"""``StationTests``: the standard tests every station inherits (in the spirit of langchain's).

In a plugin's test module::

    from waystation.testing import Reply, StationTests

    class TestTelnyxGatekeep(StationTests):
        station_class = TelnyxGatekeepStation
        sample_lead = {"phone": "+14155550100"}
        settings = {"api_key": "test-key", "base_url": "{vendor_url}"}
        fake_responses = {"/v2/number_lookup/{phone}": Reply.json({"data": {...}})}
        expected_fields = {"line_type": "mobile"}

The class then runs the standard tests against a fake vendor (the ``fake_vendor`` fixture) that
serves ``fake_responses``. A standard test may not be overridden or removed silently: doing so
fails when the class is defined. To opt out, give a reason::

    standard_test_skips = {"test_handles_cancellation": "process() never awaits"}

    @skip_standard("the vendor needs a signed body; covered by test_signature below")
    def test_no_secret_leak(self, fake_vendor): ...

    @override_standard("expected fields depend on the date")
    def test_runs_on_sample_lead(self, fake_vendor): ...   # your version runs instead
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import pytest

from waystation.station import Station
from waystation.testing.contract import (
    ContractReport,
    check_declarations,
    check_station_contract,
    fill_vendor_url,
    run_sync,
)
from waystation.testing.fake_vendor import FakeVendor, ReplySpec
from waystation.testing.harness import StationRun, run_station

F = TypeVar("F", bound=Callable[..., Any])

_REASON_ATTR = "__waystation_standard_reason__"

#: The names of the standard tests.
STANDARD_TESTS = (
    "test_has_docstring",
    "test_declarations",
    "test_contract",
    "test_runs_on_sample_lead",
    "test_handles_cancellation",
    "test_no_secret_leak",
    "test_declares_cost_when_paid",
)


class StandardTestOverrideError(TypeError):
    """A subclass of :class:`StationTests` replaced or removed a standard test without a reason."""


def _check_reason(reason: object, where: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise StandardTestOverrideError(f"{where}: give a non-empty reason")
    return reason


def skip_standard(reason: str) -> Callable[[F], F]:
    """Skip the standard test of the decorated method's name, with ``reason``."""
    _check_reason(reason, "skip_standard")

    def mark(fn: F) -> F:
        marked: F = pytest.mark.skip(reason=f"standard test skipped: {reason}")(fn)
        setattr(marked, _REASON_ATTR, reason)
        return marked

    return mark


def override_standard(reason: str) -> Callable[[F], F]:
    """Replace the standard test of the decorated method's name by this method, with ``reason``."""
    _check_reason(reason, "override_standard")

    def mark(fn: F) -> F:
        setattr(fn, _REASON_ATTR, reason)
        return fn

    return mark


class StationTests:
    """Subclass it in a station's tests: set ``station_class`` and ``sample_lead`` (and, as
    needed, ``settings``, ``fake_responses``, ``expected_fields``) and inherit the standard tests.

    Class attributes:

    - ``station_class``: the station under test.
    - ``sample_lead``: a lead it should succeed on.
    - ``settings``: its step settings; ``"{vendor_url}"`` in a string is the fake vendor's URL.
    - ``fake_responses``: ``{path: reply}`` served by the fake vendor (see ``FakeVendor.declare``).
    - ``expected_fields``: fields (a subset) the sample lead must come out with.
    - ``allow_secret_in``: ``("query",)`` when the vendor's API really takes its key there.
    - ``reads_whole_lead``: a reason, when the station legitimately reads every field.
    - ``standard_test_skips``: ``{test name: reason}``.
    """

    station_class: ClassVar[type[Station]]
    sample_lead: ClassVar[Mapping[str, Any]]
    settings: ClassVar[Mapping[str, Any]] = {}
    fake_responses: ClassVar[Mapping[str, ReplySpec | list[ReplySpec]]] = {}
    expected_fields: ClassVar[Mapping[str, Any] | None] = None
    allow_secret_in: ClassVar[tuple[str, ...]] = ()
    reads_whole_lead: ClassVar[str | None] = None
    standard_test_skips: ClassVar[Mapping[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in STANDARD_TESTS:
            if name in cls.__dict__ and not getattr(cls.__dict__[name], _REASON_ATTR, None):
                raise StandardTestOverrideError(
                    f"{cls.__qualname__}.{name} replaces (or removes) a standard station test without a "
                    f"reason: decorate it with @override_standard('why') or @skip_standard('why'), or "
                    f"list it in standard_test_skips = {{{name!r}: 'why'}}")
        skips = cls.__dict__.get("standard_test_skips", {})
        for name, reason in skips.items():
            if name not in STANDARD_TESTS:
                raise StandardTestOverrideError(
                    f"{cls.__qualname__}.standard_test_skips names {name!r}, which is not a standard test "
                    f"({', '.join(STANDARD_TESTS)})")
            _check_reason(reason, f"{cls.__qualname__}.standard_test_skips[{name!r}]")
            setattr(cls, name, _skipped(name, reason))

    # -- helpers a subclass may use or extend -----------------------------------------------

    def station_settings(self, vendor: FakeVendor) -> dict[str, Any]:
        """The step settings for a test (``{vendor_url}`` filled in)."""
        return dict(fill_vendor_url(dict(self.settings), vendor.url))

    def declare_responses(self, vendor: FakeVendor) -> None:
        """Declare ``fake_responses`` on the fake vendor."""
        if self.fake_responses:
            vendor.declare(self.fake_responses)

    def _station(self) -> type[Station]:
        cls: type[Station] | None = getattr(self, "station_class", None)
        if cls is None:
            raise TypeError(f"{type(self).__qualname__} must set station_class")
        if not hasattr(self, "sample_lead"):
            raise TypeError(f"{type(self).__qualname__} must set sample_lead")
        return cls

    def contract_report(self, vendor: FakeVendor) -> ContractReport:
        """The station's contract report (computed once per test class)."""
        cache: dict[type[Any], ContractReport] = StationTests.__dict__["_reports"]
        report = cache.get(type(self))
        if report is None:
            station = self._station()
            self.declare_responses(vendor)
            report = check_station_contract(
                station, self.sample_lead, settings=self.station_settings(vendor), vendor=vendor,
                allow_secret_in=self.allow_secret_in, reads_whole_lead=self.reads_whole_lead,
                raise_on_violation=False)
            cache[type(self)] = report
        return report

    def run_sample(self, vendor: FakeVendor) -> StationRun:
        """Run the station on ``sample_lead`` through the real engine against the fake vendor."""
        station = self._station()
        self.declare_responses(vendor)
        settings = self.station_settings(vendor)
        return run_sync(lambda: run_station(station, self.sample_lead, settings=settings))

    _reports: ClassVar[dict[type[Any], ContractReport]] = {}

    # -- the standard tests -----------------------------------------------------------------

    def test_has_docstring(self) -> None:
        """The station class has its own docstring."""
        station = self._station()
        doc = station.__dict__.get("__doc__")
        assert isinstance(doc, str) and doc.strip(), f"{station.__qualname__} has no docstring"

    def test_declarations(self) -> None:
        """name, requires, optional, provides, cost, paid and Settings are well formed."""
        report = ContractReport(self._station().name)
        check_declarations(self._station(), report)
        problems = [str(v) for v in report.violations if v.check != "docstring"]
        assert not problems, "\n".join(problems)

    def test_contract(self, fake_vendor: FakeVendor) -> None:
        """``check_station_contract`` finds no violation."""
        report = self.contract_report(fake_vendor)
        assert report.ok, str(report)

    def test_runs_on_sample_lead(self, fake_vendor: FakeVendor) -> None:
        """Through the real engine, the sample lead succeeds (with ``expected_fields``)."""
        run = self.run_sample(fake_vendor)
        assert run.record.status == "succeeded", (
            f"step {run.record.status}: {run.record.error or run.record.reason}")
        if self.expected_fields is not None:
            got = {k: run.result.data.get(k) for k in self.expected_fields}
            assert got == dict(self.expected_fields), f"expected {dict(self.expected_fields)}, got {got}"

    def test_handles_cancellation(self, fake_vendor: FakeVendor) -> None:
        """Cancelled mid-call, it stops, re-raises CancelledError and leaks no task."""
        report = self.contract_report(fake_vendor)
        problems = [str(v) for v in report.violations if v.check == "cancellation"]
        assert not problems, "\n".join(problems)

    def test_no_secret_leak(self, fake_vendor: FakeVendor) -> None:
        """No secret setting value in a URL, query, body, non-auth header, log, outcome or error."""
        station = self._station()
        settings = self.station_settings(fake_vendor)
        with fake_vendor.capture_logs():
            run = self.run_sample(fake_vendor)
        secrets = station.Settings(**settings).secret_values()
        for secret in secrets:
            fake_vendor.assert_no_secret(secret, allow_in=self.allow_secret_in)
            assert secret not in run.result.model_dump_json(), "a secret setting value is in the lead's result"
        report = self.contract_report(fake_vendor)
        problems = [str(v) for v in report.violations if v.check == "secrets"]
        assert not problems, "\n".join(problems)

    def test_declares_cost_when_paid(self, fake_vendor: FakeVendor) -> None:
        """A station that calls a vendor declares a cost (or says ``paid = False``), and never
        incurs more than it declares."""
        report = self.contract_report(fake_vendor)
        problems = [str(v) for v in report.violations if v.check == "cost"]
        assert not problems, "\n".join(problems)


def _skipped(name: str, reason: str) -> Callable[..., None]:
    def skipped(self: StationTests) -> None:
        pytest.skip(f"standard test skipped: {reason}")  # pragma: no cover - pytest skips before

    skipped.__name__ = name
    marked: Callable[..., None] = pytest.mark.skip(reason=f"standard test skipped: {reason}")(skipped)
    setattr(marked, _REASON_ATTR, reason)
    return marked


__all__ = ["STANDARD_TESTS", "StandardTestOverrideError", "StationTests", "override_standard", "skip_standard"]
