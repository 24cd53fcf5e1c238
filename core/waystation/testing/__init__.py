"""The test harness for station authors (also a pytest plugin: ``waystation.testing.pytest_plugin``).

Run a station or a route with no network and no installed plugin::

    from waystation.testing import run_station, run_route

    async def test_lookup():
        result = await run_station(MyStation, {"phone": "+14155550100"}, settings={"api_key": "k"})
        assert result.outcome.fields["line_type"] == "mobile"

and, with the ``test`` extra installed (pytest, pytest-httpserver):

- :class:`FakeVendor` / the ``fake_vendor`` fixture: a real HTTP server on 127.0.0.1 serving
  declared replies, delays and faults, recording every request;
- :class:`Cassette` / the ``cassette`` fixture: record a real vendor once, replay it in tests;
- :class:`StationTests`: the standard tests a station's test class inherits;
- :func:`check_station_contract`: does a station honour what it declares?

Those names are imported lazily, so ``import waystation.testing`` works without the test extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from waystation.testing.harness import StationRun, fast_retries, run_route, run_station

if TYPE_CHECKING:
    from waystation.testing.cassette import Cassette, CassetteError
    from waystation.testing.contract import (
        ContractReport,
        ContractViolation,
        Violation,
        check_station_contract,
        check_station_contract_async,
        run_sync,
    )
    from waystation.testing.fake_vendor import FakeVendor, RecordedRequest, Reply
    from waystation.testing.standard import (
        STANDARD_TESTS,
        StandardTestOverrideError,
        StationTests,
        override_standard,
        skip_standard,
    )

_LAZY = {
    "Cassette": "cassette", "CassetteError": "cassette",
    "ContractReport": "contract", "ContractViolation": "contract", "Violation": "contract",
    "check_station_contract": "contract", "check_station_contract_async": "contract", "run_sync": "contract",
    "FakeVendor": "fake_vendor", "RecordedRequest": "fake_vendor", "Reply": "fake_vendor",
    "STANDARD_TESTS": "standard", "StandardTestOverrideError": "standard", "StationTests": "standard",
    "override_standard": "standard", "skip_standard": "standard",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'waystation.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"waystation.testing.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "STANDARD_TESTS",
    "Cassette",
    "CassetteError",
    "ContractReport",
    "ContractViolation",
    "FakeVendor",
    "RecordedRequest",
    "Reply",
    "StandardTestOverrideError",
    "StationRun",
    "StationTests",
    "Violation",
    "check_station_contract",
    "check_station_contract_async",
    "fast_retries",
    "override_standard",
    "run_route",
    "run_station",
    "run_sync",
    "skip_standard",
]
