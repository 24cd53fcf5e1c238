"""The core's standard station tests (``waystation.testing.StationTests``) for both DNC stations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from waystation.testing import StationTests
from waystation.testing.fake_vendor import FakeVendor, Reply
from waystation_dnc.realvalidation import RealValidationDNCStation
from waystation_dnc.stations import DNCScrubStation


class TestDNCScrubStandard(StationTests):
    """The local store, built from an FTC full-list file (area code 212) written to a per-test tmp dir.

    ``settings`` holds what does not depend on the test; the store and registry paths are added in
    :meth:`station_settings`, from the ``tmp_path`` of the running test.
    """

    station_class = DNCScrubStation
    sample_lead = {"phone": "+12125550123", "phone_valid": True}
    settings = {"lists": ["federal", "internal", "litigator"], "max_age_days": 31}
    expected_fields = {"dnc_listed": True, "dnc_lists": ["federal"]}

    tmp: Path

    @pytest.fixture(autouse=True)
    def _registry(self, tmp_path: Path) -> None:
        """Write a federal full list (the sample number is on it) into this test's tmp dir."""
        (tmp_path / "212.txt").write_text("2125550123\n2125550199\n2125550142\n", encoding="utf-8")
        self.tmp = tmp_path

    def station_settings(self, vendor: FakeVendor) -> dict[str, Any]:
        """The class settings plus the store and the registry file in this test's tmp dir."""
        return {**super().station_settings(vendor), "store": str(self.tmp / "state" / "dnc.sqlite"),
                "federal_files": [str(self.tmp / "212.txt")]}


class TestRealValidationDNCStandard(StationTests):
    """RealValidation's DNC Lookup API, served by the fake vendor with the documented JSON answer
    (realphonevalidation.com/api-documentation/dnc-lookup-api-doc): on the national registry only."""

    station_class = RealValidationDNCStation
    sample_lead = {"phone": "+17275555555", "phone_valid": True}
    settings = {"base_url": "{vendor_url}/rpvWebService", "token": "rv-token-5f1c9e", "price": 0.004,
                "allow_hosts": ["127.0.0.1"]}
    fake_responses = {"/rpvWebService/DNCLookup.php": Reply.json({
        "RESPONSECODE": "OK", "RESPONSEMSG": {}, "national_dnc": "Y", "state_dnc": "N", "dma": "N",
        "litigator": "N", "iscell": "N", "id": "4"})}
    expected_fields = {"dnc_listed": True, "dnc_lists": ["federal"]}
    allow_secret_in = ("query",)  # the vendor's design: DNCLookup.php takes the token as a query parameter
