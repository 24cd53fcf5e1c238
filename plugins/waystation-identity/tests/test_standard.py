"""The core's standard station tests (``waystation.testing.StationTests``) for this plugin's station."""

from __future__ import annotations

from waystation.testing import StationTests
from waystation_identity.stations import IdentityResolutionStation


class TestIdentityResolutionStandard(StationTests):
    """IdentityResolutionStation: offline and free, so no fake vendor replies are declared."""

    station_class = IdentityResolutionStation
    sample_lead = {
        "name": "Dr. Jane Q. Doe",
        "address": "1 Market St, San Francisco, CA 94105",
        "country": "US",
        "phone": "(415) 555-0100",
        "email": "Jane.Doe@Example.com",
    }
    settings = {"default_region": "US"}
    expected_fields = {
        "first_name": "Jane",
        "middle_name": "Q.",
        "last_name": "Doe",
        "street": "1 Market St",
        "city": "San Francisco",
        "state": "CA",
        "zipcode": "94105",
        "phone": "+14155550100",
        "phone_region": "US",
        "phone_valid": True,
        "email": "jane.doe@example.com",
        "email_valid": True,
        "is_company": False,
    }
