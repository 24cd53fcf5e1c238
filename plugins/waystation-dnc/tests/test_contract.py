"""The core harness's contract check on both DNC stations."""

from __future__ import annotations

from pathlib import Path

from waystation.testing import check_station_contract
from waystation.testing.fake_vendor import Reply
from waystation_dnc.realvalidation import RealValidationDNCStation
from waystation_dnc.stations import DNCScrubStation


def test_local_station_contract(tmp_path: Path) -> None:
    federal = tmp_path / "212.txt"
    federal.write_text("2125550123\n2125550199\n")
    report = check_station_contract(
        DNCScrubStation, {"phone": "+12125550123", "phone_valid": True},
        settings={"store": str(tmp_path / "dnc.sqlite"), "federal_files": [str(federal)]})
    assert not report.violations


def test_paid_station_contract() -> None:
    report = check_station_contract(
        RealValidationDNCStation, {"phone": "+12125550123", "phone_valid": True},
        settings={"base_url": "{vendor_url}", "token": "rv-secret-token", "price": 0.004,
                  "allow_hosts": ["127.0.0.1"]},
        secrets=["rv-secret-token"], allow_secret_in=("query",),
        fake_responses={"/DNCLookup.php": Reply.json({
            "status": "clean", "national_dnc": "N", "state_dnc": "N", "dma": "N", "litigator": "N",
            "iscell": "Y", "RESPONSEMSG": {}, "RESPONSECODE": "OK"})})
    assert not report.violations
