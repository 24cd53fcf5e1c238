"""The core's standard station tests (``waystation.testing.StationTests``) for TelnyxGatekeepStation,
the fake vendor serving the documented Number Lookup v2 exchanges of ``data/telnyx-number-lookup-examples.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from waystation.testing import StationTests
from waystation.testing.fake_vendor import Reply
from waystation_telnyx.station import TelnyxGatekeepStation

EXAMPLES: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "telnyx-number-lookup-examples.json").read_text(encoding="utf-8"))
KEY = "KEY0190TELNYXsecretZq7"


def documented(name: str) -> Reply:
    """The documented response of exchange ``name`` as a fake-vendor reply."""
    response = EXAMPLES[name]["response"]
    headers = {k: v for k, v in response.get("headers", {}).items() if k.lower() != "content-type"}
    return Reply.json(response["body"], status=response["status"], headers=headers)


class TestTelnyxGatekeepStandard(StationTests):
    """The default lookup (type=carrier) of a Verizon mobile number in Chicago."""

    station_class = TelnyxGatekeepStation
    sample_lead = {"first_name": "Dana", "last_name": "Kowalski", "city": "Chicago", "state": "IL",
                   "zipcode": "60614", "phone": "+13125550142"}
    settings = {"api_key": KEY, "base_url": "{vendor_url}/v2", "allow_hosts": ["127.0.0.1"]}
    fake_responses = {"/v2/number_lookup/+13125550142": documented("constructed_carrier_mobile")}
    expected_fields = {"line_type": "mobile", "carrier": "CELLCO PARTNERSHIP DBA VERIZON WIRELESS - IL",
                       "normalized_carrier": "Verizon", "ported": False, "phone_valid": True}


class TestTelnyxGatekeepCallerNameStandard(StationTests):
    """Caller name only (type=caller-name) of a New York landline: another price, another reservation."""

    station_class = TelnyxGatekeepStation
    sample_lead = {"name": "John Smith", "city": "New York", "state": "NY", "zipcode": "10001",
                   "phone": "(212) 555-0188"}
    settings = {"api_key": KEY, "base_url": "{vendor_url}/v2", "allow_hosts": ["127.0.0.1"], "carrier": False,
                "caller_name": True}
    fake_responses = {"/v2/number_lookup/+12125550188": documented("constructed_caller_name_fixed_line")}
    expected_fields = {"line_type": "fixed line", "carrier": "Verizon New York Inc.", "caller_name": "SMITH JOHN",
                       "phone_valid": True}
