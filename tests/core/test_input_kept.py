"""Input is never lost: a station that normalises or clears an input field changes the column, and
the value the file had is kept in ``<column>_input`` on every row (CSV and JSONL alike)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, ClassVar

from waystation import Outcome, PluginHost, Station, StepContext
from waystation.batch import BatchConfig, run_batch


class Tidy(Station):
    """Title-cases ``name``; clears a ``phone`` that is not ten digits."""

    name = "Tidy"
    provides: ClassVar[dict[str, Any]] = {"name": str, "phone": str, "tidy": bool}

    async def process(self, ctx: StepContext) -> Outcome:
        phone = "".join(ch for ch in str(ctx.data.get("phone") or "") if ch.isdigit())
        fields: dict[str, Any] = {"name": str(ctx.data.get("name") or "").title(), "tidy": True}
        if len(phone) == 10:
            return Outcome({**fields, "phone": "+1" + phone})
        return Outcome(fields, clear=("phone",))


def _host() -> PluginHost:
    h = PluginHost()
    h.add_station(Tidy)
    return h


def _write(tmp: Path) -> tuple[Path, list[dict[str, str]]]:
    rows = [{"id": "1", "name": "ADA LOVELACE", "phone": "(212) 555-0123", "city": "London"},
            {"id": "2", "name": "alan turing", "phone": "(212) 555-01", "city": ""},
            {"id": "3", "name": "Grace", "phone": "", "city": "NYC"}]
    path = tmp / "leads.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path, rows


async def test_csv_keeps_every_input_value(tmp_path: Path) -> None:
    route = tmp_path / "r.yaml"
    route.write_text("name: tidy\nsteps:\n  - station: Tidy\n")
    leads, rows = _write(tmp_path)
    cfg = BatchConfig(route=route, input=leads, output=tmp_path / "out.csv", checkpoint=f"sqlite:///{tmp_path}/c.db")
    res = await run_batch(cfg, _host())
    assert res.exit_code == 0
    with (tmp_path / "out.csv").open(newline="") as f:
        out = list(csv.DictReader(f))
    assert list(out[0])[:7] == ["id", "name", "phone", "city", "name_input", "phone_input", "tidy"]
    for before, after in zip(rows, out, strict=True):
        assert after["id"] == before["id"] and after["city"] == before["city"]  # untouched columns as they were
        assert after["name_input"] == before["name"] and after["phone_input"] == before["phone"]
    assert [r["name"] for r in out] == ["Ada Lovelace", "Alan Turing", "Grace"]
    assert [r["phone"] for r in out] == ["+12125550123", "", ""]  # the invalid one is cleared ...
    assert out[1]["phone_input"] == "(212) 555-01"  # ... and its raw value kept


async def test_jsonl_output_follows_the_same_rule(tmp_path: Path) -> None:
    route = tmp_path / "r.yaml"
    route.write_text("name: tidy\nsteps:\n  - station: Tidy\n")
    leads, rows = _write(tmp_path)
    cfg = BatchConfig(route=route, input=leads, output=tmp_path / "out.jsonl", checkpoint=f"sqlite:///{tmp_path}/c.db")
    assert (await run_batch(cfg, _host())).exit_code == 0
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [o["phone_input"] for o in out] == [r["phone"] for r in rows]
    assert out[0]["phone"] == "+12125550123" and "phone" not in out[1]
