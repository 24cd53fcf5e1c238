"""The core's standard station tests (``waystation.testing.StationTests``) for DatabaseSaveStation,
saving into a SQLite file in the running test's tmp dir."""

from __future__ import annotations

from typing import Any

import pytest
from waystation.testing import StationTests
from waystation.testing.fake_vendor import FakeVendor
from waystation_sql.stations import DatabaseSaveStation


class TestDatabaseSaveStandard(StationTests):
    """DatabaseSaveStation on SQLite; the URL (a secret setting) is added in :meth:`station_settings`
    from the ``sqlite_url`` fixture of the running test."""

    station_class = DatabaseSaveStation
    sample_lead = {
        "first_name": "Ada", "last_name": "Lovelace", "street": "12 St James's Sq", "city": "Boston",
        "state": "MA", "zipcode": "02116", "phone": "+16175550123", "phone_valid": True,
        "email": "ada.lovelace@example.com", "median_household_income": 98765, "dnc_listed": False,
        "dnc_lists": [],
    }
    settings = {"table": "standard_leads"}
    expected_fields = {"saved": True}
    reads_whole_lead = "it saves the lead as it stands: every field is a column and part of the JSON record"

    url: str

    @pytest.fixture(autouse=True)
    def _database(self, sqlite_url: str) -> None:
        """Point the station at a SQLite file in this test's tmp dir."""
        self.url = sqlite_url

    def station_settings(self, vendor: FakeVendor) -> dict[str, Any]:
        """The class settings plus this test's SQLite URL."""
        return {**super().station_settings(vendor), "url": self.url}
