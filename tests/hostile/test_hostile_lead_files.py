"""Hostile lead files: every bad record is rejected with its exact reason and the batch goes on;
huge lines are never held in memory; huge headers are refused at once with the limit named; input
text is never read as terminal markup."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any, ClassVar

import pytest
from waystation import Outcome, PluginHost, Station, StepContext
from waystation.batch import MAX_COLUMNS, BatchConfig, BatchError, BatchRunner, CsvReader, open_reader

LEADS = Path(__file__).parent / "leads"


def reasons(path: Path, fmt: str, **kw: Any) -> list[tuple[int, str | None]]:
    reader = open_reader(path, fmt, **kw)  # type: ignore[arg-type]
    try:
        return [(rec.line, rec.error) for rec in reader]
    finally:
        reader.close()


def utf8(message: str) -> str:
    """The UTF-8 message, with or without the --encoding hint that a later version adds."""
    return message.split(" (try --encoding")[0]


def test_bad_csv_rows_are_rejected_with_their_reason() -> None:
    got = [(line, err and utf8(err)) for line, err in reasons(LEADS / "bad-rows.csv", "csv")]
    assert got == [
        (2, None),
        (3, "invalid UTF-8 in column 'first_name'"),
        (4, "a NUL byte in column 'first_name'"),
        (5, "the row has 6 fields, the header has 4"),
        (6, "malformed CSV: ',' expected after '\"'"),
        (7, None),
        (8, "malformed CSV: unexpected end of data"),  # an unclosed quote runs to the end of the file
    ]


def test_bad_jsonl_lines_are_rejected_with_their_reason() -> None:
    got = [(line, err and utf8(err)) for line, err in reasons(LEADS / "bad-lines.jsonl", "jsonl")]
    assert got == [
        (1, None),
        (2, "invalid JSON: a number of 5,000 digits is longer than the limit of 40"),
        (3, "invalid JSON: nested too deep"),
        (4, "invalid JSON: NaN is not a number a lead can hold"),
        (5, "invalid JSON: the number 1e400 is too large"),
        (6, "field 'first_name' holds a NUL character"),
        (7, "expected a JSON object, got an array"),
        (8, "invalid UTF-8 at byte 32 of the line"),
        (9, "invalid JSON: Invalid control character at (column 40)"),
        (10, None),
    ]


def test_a_huge_line_is_never_held_in_memory(tmp_path: Path) -> None:
    """A 64 MiB line between two good records, with a 1 MiB limit: rejected, the next record read,
    and at most limit + 1 bytes of it ever kept (bytes read and kept are counted, not timed)."""
    for fmt in ("csv", "jsonl"):
        path = tmp_path / f"big.{fmt}"
        with path.open("wb") as f:
            if fmt == "csv":
                big_line = b"2," + b"x" * (64 << 20) + b"\n"
                f.write(b"id,note\n1,ok\n" + big_line + b"3,after\n")
            else:
                big_line = b'{"id": "2", "note": "' + b"x" * (64 << 20) + b'"}\n'
                f.write(b'{"id": "1"}\n' + big_line + b'{"id": "3"}\n')
        tracemalloc.start()
        try:
            reader = open_reader(path, fmt, 1 << 20)  # type: ignore[arg-type]
            recs = [(r.line, r.error, r.lead and r.lead.get("id")) for r in reader]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        reader.close()
        assert reader.bytes_read == path.stat().st_size
        assert reader.longest_kept <= reader.line_limit + 1
        assert peak < 3 * reader.line_limit + (8 << 20), f"{fmt}: peak {peak / 2**20:.1f} MiB"
        first, big, last = recs
        assert first == (2, None, "1") if fmt == "csv" else first == (1, None, "1")
        assert big[2] is None and last[1] is None and last[2] == "3"
        if fmt == "csv":
            assert big[:2] == (3, f"line 3 is {len(big_line):,} bytes, longer than the limit of 4,194,304 "
                                  "(4 x --max-field-size)")
        else:
            assert big[:2] == (2, f"the line is {len(big_line):,} bytes, more than the limit of 1,048,576")


def test_a_huge_quoted_field_spanning_lines_is_rejected_and_parsing_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_bytes(b'id,note\n1,"starts here\n' + b"y" * (5 << 20) + b'\nends here"\n2,after\n')
    assert reasons(path, "csv", max_field_size=1 << 20) == [
        (2, f"line 3 is {5 * 2**20 + 1:,} bytes, longer than the limit of 4,194,304 (4 x --max-field-size)"),
        (4, "the row has 1 fields, the header has 2"),  # the rest of the broken record, on its own
        (5, None),
    ]


@pytest.mark.parametrize("columns", [40_000, 1_000_000])
def test_a_header_with_too_many_columns_is_refused(tmp_path: Path, columns: int) -> None:
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(columns)) + "\n" + ",".join("1" * columns) + "\n")
    with pytest.raises(BatchError) as info:
        CsvReader(path, 1 << 24)
    assert str(info.value) == f"{path}:1: the header has {columns:,} columns, more than the limit of {MAX_COLUMNS:,}"


def test_the_duplicate_header_check_is_linear(tmp_path: Path) -> None:
    path = tmp_path / "dupes.csv"
    names = [f"c{i}" for i in range(MAX_COLUMNS - 2)] + ["c5", "c7"]
    path.write_text(",".join(names) + "\n")
    with pytest.raises(BatchError, match=r"the header names c5, c7 more than once"):
        CsvReader(path)


class Echo(Station):
    """Echoes the first name."""

    name = "Echo"
    provides: ClassVar[dict[str, Any]] = {"greeting": str}

    async def process(self, ctx: StepContext) -> Outcome:
        return Outcome({"greeting": f"hi {ctx.data.get('first_name')}"})


async def test_a_batch_over_hostile_files_rejects_per_lead_and_finishes(tmp_path: Path) -> None:
    route = tmp_path / "r.yaml"
    route.write_text("name: r\nsteps: [{station: Echo}]\n")
    host = PluginHost()
    host.add_stations([Echo])
    for name in ("bad-lines.jsonl", "bad-rows.csv"):
        out = tmp_path / f"{name}.out.jsonl"
        result = await BatchRunner(BatchConfig(route=route, input=LEADS / name, output=out,
                                               checkpoint=f"sqlite:///{tmp_path / 'ck.db'}"), host).run()
        assert result.exit_code == 0, result.error
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        statuses = [r["_status"] for r in rows]
        assert statuses.count("succeeded") == 2 and statuses[0] == "succeeded"
        assert statuses.count("rejected") == (8 if name.endswith(".jsonl") else 5)
        assert all(r["_reason"] for r in rows if r["_status"] == "rejected")


def test_input_text_is_never_read_as_terminal_markup(tmp_path: Path) -> None:
    """A header like ``[/x]`` once crashed the terminal output (rich MarkupError)."""
    route = tmp_path / "r.yaml"
    route.write_text("name: r\nsteps: [{station: IdentityResolutionStation}]\n")
    for args in (["run", str(route), str(LEADS / "markup-header.csv"), "-o", str(tmp_path / "o.csv"),
                  "--checkpoint", f"sqlite:///{tmp_path / 'ck.db'}", "--no-progress", "--dry-run"],
                 ["run", str(route), str(LEADS / "markup-header.csv"), "-o", str(tmp_path / "o.csv"),
                  "--checkpoint", f"sqlite:///{tmp_path / 'ck.db'}", "--no-progress"]):
        proc = subprocess.run([sys.executable, "-m", "waystation", *args], capture_output=True, text=True,
                              timeout=120)
        assert "MarkupError" not in proc.stderr and "Traceback" not in proc.stderr
        assert proc.returncode in (0, 2), proc.stderr
        if "--dry-run" in args and proc.returncode == 0:
            assert "[/x]" in proc.stdout and "[bold]name[/bold]" in proc.stdout
