"""The core harness's contract check on DatabaseSaveStation."""

from __future__ import annotations

from pathlib import Path

from waystation.testing import check_station_contract
from waystation_sql.stations import DatabaseSaveStation


def test_contract(tmp_path: Path) -> None:
    report = check_station_contract(
        DatabaseSaveStation, {"first_name": "Ada", "last_name": "Lovelace", "phone": "+14155550100"},
        settings={"url": f"sqlite:///{tmp_path / 'leads.db'}", "table": "contract_leads"},
        reads_whole_lead="it saves the whole lead record")
    assert not report.violations
