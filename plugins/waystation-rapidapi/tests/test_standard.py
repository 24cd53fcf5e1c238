"""The core's standard station tests (``waystation.testing.StationTests``) for both names of the
skip-tracing station, the fake vendor serving the documented search and details responses of
``data/rapidapi-skip-tracing-examples.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from waystation.testing import StationTests
from waystation.testing.fake_vendor import Reply
from waystation_rapidapi.station import RapidApiStation, SkipTracingStation

EXAMPLES: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "rapidapi-skip-tracing-examples.json").read_text(encoding="utf-8"))
KEY = "rapidKEY7f3e9aSECRETc1d2"

#: A lead from a CRM export: name and city/state/ZIP, so the station searches /search/bynameaddress.
JOHN_DENVER = {"first_name": "John", "last_name": "Smith", "city": "Denver", "state": "CO", "zipcode": "80201",
               "age": 45, "source": "crm-export-2026-11"}
#: What the documented details response gives for him (the best candidate: John A Smith, 45, Denver).
FOUND = {"phone": "+13035550100", "emails": ["john.smith@example.com"],
         "current_address": "123 Main St, Denver, CO 80201", "age": 45}


class TestSkipTracingStandard(StationTests):
    """SkipTracingStation: search by name and address, then details of the best candidate."""

    station_class = SkipTracingStation
    sample_lead = JOHN_DENVER
    settings = {"api_key": KEY, "base_url": "{vendor_url}", "allow_hosts": ["127.0.0.1"]}
    fake_responses = {"/search/bynameaddress": Reply.json(EXAMPLES["search_response"]),
                      "/search/detailsbyID": Reply.json(EXAMPLES["details_response"])}
    expected_fields = FOUND


class TestRapidApiStandard(TestSkipTracingStandard):
    """RapidApiStation, the seed's name for the same station."""

    station_class = RapidApiStation
