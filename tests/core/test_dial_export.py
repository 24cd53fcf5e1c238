"""Exports fail closed on stale evidence: a batch re-checks every verdict as it writes it, also
when a resumed run rewrites finished leads from their checkpoints (a re-export) after the
evidence expired; the report counts verdicts and reasons."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import waystation.dial.evidence as ev
from waystation import Outcome, PluginHost, Station, StepContext
from waystation.batch import BatchConfig, run_batch
from waystation.dial import decide, policy
from waystation.dial.export import ExportTally


class ToyVerdict(Station):
    """Federal and internal checks (fresh, 31 and 10 days) and the verdict, in one toy step."""

    name = "ToyVerdict"
    optional = ("phone",)
    provides = {"dial_eligible": str, "dial_reasons": list[str], "dial_policy": str, "dial_checked_at": str,
                "dial_window_start_utc": str, "dial_window_end_utc": str, "dial_window_start_local": str,
                "dial_window_end_local": str, "dial_window_zone": str, "dial_window_rules": str,
                "dial_max_calls_24h": int, "dial_evidence": list[dict[str, Any]]}

    async def process(self, ctx: StepContext) -> Outcome:
        now = ev.utcnow()
        phone = ctx.data["phone"]
        items = [ev.make("federal_dnc", "listed" if phone.endswith("9") else "not_listed", station=self.name,
                         phone=phone, checked_at=now, expires_at=now + timedelta(days=31), file="212.txt", date=now),
                 ev.make("internal_dnc", "not_listed", station=self.name, phone=phone, checked_at=now,
                         expires_at=now + timedelta(days=10), file="internal.txt", date=now)]
        data = {"phone": phone, "phone_timezone": "America/New_York", "dial_evidence": items}
        verdict = decide(data, policy(wireless="ignore"), now)
        assert verdict.window is not None
        items.append(ev.make("calling_window", "open", station=self.name, phone=phone, checked_at=now,
                             expires_at=verdict.window.end, zones=list(verdict.window.zones), states=[]))
        fields = verdict.fields()
        fields["dial_evidence"] = items
        return Outcome({k: v for k, v in fields.items() if v is not None})


def write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["id", "phone"])
        w.writeheader()
        w.writerows(rows)
    return path


async def test_a_re_export_after_the_evidence_expired_is_refused(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    host = PluginHost()
    host.add_stations([ToyVerdict])
    route = tmp_path / "r.yaml"
    route.write_text("name: dial\nsteps:\n  - station: ToyVerdict\n")
    inp = write(tmp_path / "in.csv", [{"id": "A", "phone": "+12125550101"}, {"id": "B", "phone": "+12125550109"}])
    out = tmp_path / "out.csv"
    cfg = BatchConfig(route=route, input=inp, output=out, checkpoint=f"sqlite:///{tmp_path / 'ck.db'}",
                      report_path=tmp_path / "report.json")
    first = await run_batch(cfg, host)
    assert first.exit_code == 0
    rows = {r["id"]: r for r in csv.DictReader(out.open())}
    assert rows["A"]["dial_eligible"] == "yes" and rows["B"]["dial_eligible"] == "no"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["dial"] == {"verdicts": {"no": 1, "yes": 1}, "reasons": {"listed:federal_dnc": 1},
                              "stale": 0, "downgraded": 0}
    # forty days later the output is exported again from the checkpoints (no station runs again)
    later = ev.utcnow() + timedelta(days=40)
    monkeypatch.setattr(ev, "utcnow", lambda: later)
    out.unlink()
    again = await run_batch(BatchConfig(route=route, input=inp, output=out, checkpoint=cfg.checkpoint,
                                        resume=first.run_id, report_path=tmp_path / "report2.json"), host)
    rows = {r["id"]: r for r in csv.DictReader(out.open())}
    assert rows["A"]["dial_eligible"] == "unknown"
    assert set(json.loads(rows["A"]["dial_reasons"])) == {"expired:federal_dnc", "expired:internal_dnc"}
    assert rows["B"]["dial_eligible"] == "no"  # never upgraded, never hidden
    assert datetime.fromisoformat(rows["A"]["dial_window_end_utc"]) > later  # the window moved on
    assert again.exit_code == 1 and "expired evidence" in (again.error or "")
    report = json.loads((tmp_path / "report2.json").read_text())
    assert report["dial"]["stale"] == 2 and report["dial"]["downgraded"] == 1


def test_tally_restores_what_a_resumed_run_had_counted() -> None:
    tally = ExportTally({"verdicts": {"yes": 3}, "reasons": {}, "stale": 1, "downgraded": 1})
    tally.check({"phone": "+12125550101"})  # no verdict: not counted
    assert tally.as_dict()["verdicts"] == {"yes": 3} and tally.refusal() is not None
    assert ExportTally().refusal() is None and ExportTally().empty
