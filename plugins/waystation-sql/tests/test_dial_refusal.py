"""The save refuses a dial verdict whose evidence has expired (docs/compliance.md); a fresh one is
saved with its verdict and evidence columns."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

from waystation.dial import evidence as ev
from waystation.testing import run_station
from waystation_sql.stations import DatabaseSaveStation


def lead(expires_in_days: float) -> dict[str, object]:
    now = ev.utcnow()
    item = ev.make("federal_dnc", "not_listed", station="DNCScrubStation", phone="+12125550101",
                   checked_at=now - timedelta(days=40), expires_at=now + timedelta(days=expires_in_days),
                   file="212.txt", date=now - timedelta(days=40))
    return {"id": "S1", "phone": "+12125550101", "dial_eligible": "yes", "dial_reasons": [],
            "dial_evidence": [item]}


async def test_expired_evidence_is_refused_fresh_is_saved(tmp_path: Path) -> None:
    settings = {"url": f"sqlite:///{tmp_path / 'leads.db'}", "table": "leads"}
    refused = await run_station(DatabaseSaveStation, lead(-9), settings=settings)
    assert refused.record.status == "failed"
    assert "refusing to save a dial verdict whose evidence has expired: federal_dnc" in (refused.record.error or "")
    assert not (tmp_path / "leads.db").exists()
    ok = await run_station(DatabaseSaveStation, lead(5), settings=settings)
    assert ok.record.status == "succeeded"
    with sqlite3.connect(tmp_path / "leads.db") as conn:
        verdict, evidence = conn.execute("SELECT dial_eligible, dial_evidence FROM leads").fetchone()
    assert verdict == "yes" and json.loads(evidence)[0]["check"] == "federal_dnc"
