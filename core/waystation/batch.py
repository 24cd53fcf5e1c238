"""Batch runs: stream a CSV/JSONL file of leads through a route, survive interruption, resume.

How a batch goes
----------------
The input is read one record at a time (memory stays flat however large the file). Each good
record becomes a lead with a stable id (:func:`waystation.engine.lead_id_of`: its ``id`` column,
else a hash of its normalised content) and runs through the engine with at most
``concurrency`` leads in flight. Every step is checkpointed in the store (``--checkpoint``), so a
lead never buys a completed paid lookup twice.

Output is written **in input order**, one row per input record: a small reorder window (a bounded
queue of ``4 * concurrency`` records) lets fast leads overtake slow ones without the output
depending on timing. Results are never kept beyond that window: the report aggregates as it goes.

Output columns
--------------
CSV output has every input column (the header, in order), then ``<column>_input`` for every input
column a step may change, then every field the route's steps may add (route order), then:

- ``_lead_id``: the lead's stable id;
- ``_status``: ``succeeded``, ``stopped`` (a station ended the route early, keeping the data),
  ``failed``, or ``rejected`` (the input record was malformed; the lead never ran);
- ``_reason``: why it stopped, failed or was rejected (empty when it succeeded);
- ``_cost``: what the lead cost in USD.

Input is never lost: a column a station normalised (``(212) 555-0123`` → ``+12125550123``),
filled in or cleared (an unusable phone) holds the route's value, and ``<column>_input`` holds,
on every row, the value the file had (:func:`output_row`; the same rule for CSV and JSONL).

JSONL output has the same keys in each object. With JSONL input and CSV output, the CSV columns
are the first record's keys (keys first seen in later records are dropped from CSV output; use
JSONL output to keep them). ``failed`` and ``rejected`` rows are also written to the rejects file
(JSONL, default ``<output stem>.rejects.jsonl``): ``line`` (the input line where the record
starts), ``lead_id``, ``status``, ``reason``, ``errors``, ``input`` (the parsed record, if any)
and, for rejected records, ``raw`` (the record's text, cut at 2,000 characters).

Bad input
---------
A malformed record is *rejected* (output row with ``_status=rejected``, a rejects-file entry with
its line number and reason) and the batch goes on: bad CSV quoting, a row with a different number
of fields than the header (trailing empty fields are tolerated), a field larger than
``max_field_size`` (default 1 MiB), invalid UTF-8, a JSONL line that is not a JSON object, a value
that is an object or an array, a JSONL record missing a field the route requires, a NUL byte, JSON
nested too deep, an integer of more than ``MAX_INT_DIGITS`` digits, ``NaN``/``Infinity``. Lines are
read with a bounded ``readline`` (a line over the limit is skipped, never held whole in memory,
and reading goes on after it); a header of more than ``MAX_COLUMNS`` columns is refused. A CSV header
that lacks a required column is refused before any lead runs (the route is compiled against the
header). An empty required *value* is not a rejection: the step that needs it is skipped with
reason ``missing_requirements``.

A lead id that appears twice with the same content is the same lead: it is enriched once (if both
rows are in flight together they share one run; later rows reuse the saved result) and written
once per input row. Rows that share a lead id but not their content are different people: each
runs on its own (never sharing a run or reusing the other's saved state, see
:mod:`waystation.saved`); the second waits for the first, and the checkpoint then holds the later
one, so give each person a unique id if such a run may be resumed.

Resume
------
The run's metadata in the store records, at every output flush, how many records were written
and the byte offsets of the output and rejects files. ``--resume RUN_ID`` truncates both files to
those offsets (dropping any half-written tail), skips the records already written, and runs the
rest: leads that had finished are returned from their checkpoints without any call, interrupted
leads continue after their last completed step (in-doubt calls follow the station's
``in_doubt`` policy). So the final output has every input record exactly once. If the output
file is missing or shorter than recorded, it is rewritten from the start (again from checkpoints,
with no paid call repeated). The batch budget of a resumed run starts from what the saved states
say was spent (:func:`waystation.stores.budget_ledger`).

Interrupts
----------
The first SIGINT/SIGTERM stops taking new leads; leads in flight may finish for ``grace`` seconds,
then are cancelled (their completed steps are checkpointed); the output is flushed, the exact
resume command is printed and the exit status is 130 (SIGINT) or 143 (SIGTERM). A second signal
exits at once: every completed step is already durable in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import io
import json
import logging
import math
import os
import re
import secrets
import shlex
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from waystation.budget import Budget
from waystation.csvsafe import escape_row
from waystation.deferral import run_settled
from waystation.dial.export import ExportTally
from waystation.engine import Engine, lead_id_of
from waystation.errors import WaystationError
from waystation.limits import MAX_FIELD_SIZE
from waystation.metrics import Metrics
from waystation.plan import Plan, compile_route, credential_overrides
from waystation.plugins import PluginHost
from waystation.report import LEAD_STATUSES, Report, ReportCollector, report_from_store
from waystation.result import LeadResult
from waystation.route import Route
from waystation.saved import content_hash
from waystation.stores import DEFAULT_SQLITE_URL, CheckpointStore, budget_ledger, open_store, redact_url

if TYPE_CHECKING:
    from _csv import Reader as _CsvRows

    from rich.console import Console
    from rich.progress import Progress, TaskID

    from waystation.history.collector import HistoryRecorder

log = logging.getLogger("waystation.batch")

Format = Literal["csv", "jsonl"]
#: Columns added to every output row, in order.
STATUS_COLUMNS = ("_lead_id", "_status", "_reason", "_cost")
_RAW_KEEP = 2000
#: Most columns a CSV header may have (the duplicate check is linear; this bounds the row dicts).
MAX_COLUMNS = 10_000
#: A CSV line may hold several fields: its limit is this many times ``max_field_size`` (bytes).
CSV_LINE_FACTOR = 4
#: Longest integer (digits) a JSONL value may have.
MAX_INT_DIGITS = 40
_SURROGATE = re.compile("[\udc80-\udcff]")


class BatchError(WaystationError):
    """A batch cannot start or go on (bad input file, unknown run to resume, ...)."""

    category = "batch"


# ============================================================================ reading


@dataclass(slots=True)
class InputRecord:
    """One input record: its position (``ordinal``, 0-based; ``line``, 1-based where it starts),
    the lead (``None`` when nothing could be parsed) and, when rejected, ``error`` and ``raw``."""

    ordinal: int
    line: int
    lead: dict[str, Any] | None
    error: str | None = None
    raw: str | None = None


def detect_format(path: Path, given: str | None = None) -> Format:
    """``csv`` or ``jsonl``: ``given`` if set, else by extension (``.csv``/``.tsv``... ``.jsonl``,
    ``.ndjson``, ``.json``)."""
    value = (given or "").lower() or {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
                                      ".csv": "csv"}.get(path.suffix.lower(), "")
    if value in ("csv", "jsonl"):
        return value  # type: ignore[return-value]
    if value == "ndjson":
        return "jsonl"
    raise BatchError(f"{path}: cannot tell the format from the extension {path.suffix!r}: "
                     "use --format csv or --format jsonl")


def _label(encoding: str) -> str:
    """``UTF-8`` for the UTF-8 spellings, else the encoding as given."""
    return "UTF-8" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


def _clean(value: str) -> str:
    return _SURROGATE.sub("\ufffd", value)


class LeadReader:
    """Base of the streaming readers: iterate for :class:`InputRecord` objects."""

    columns: list[str] | None = None

    def __init__(self, path: Path, max_field_size: int = MAX_FIELD_SIZE, *, encoding: str = "utf-8",
                 delimiter: str = ",", mapping: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.max_field_size = max_field_size
        self.encoding = encoding
        self.delimiter = delimiter
        #: input column → lead field renames (``--map`` and the route's ``map:``)
        self.mapping = dict(mapping or {})
        self.required: frozenset[str] = frozenset()
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.size = os.fstat(self._f.fileno()).st_size
        self.bytes_read = 0
        #: longest line kept in memory while reading, in bytes (bounded by ``line_limit`` + 1)
        self.longest_kept = 0

    @property
    def line_limit(self) -> int:
        """Longest physical line, in bytes; a longer one is skipped without being held in memory."""
        return self.max_field_size

    def _readline(self) -> tuple[bytes, int] | None:
        """The next physical line and its full length in bytes (``None`` at the end). A line longer
        than :attr:`line_limit` is read past in small chunks and only its first bytes are kept, so
        a 400 MiB line never sits in memory."""
        limit = self.line_limit
        raw = self._f.readline(limit + 1)
        if not raw:
            return None
        size = len(raw)
        if size > limit and not raw.endswith(b"\n"):
            raw = raw[:_RAW_KEEP]
            while True:
                chunk = self._f.readline(1 << 16)
                size += len(chunk)
                if not chunk or chunk.endswith(b"\n"):
                    break
        self.longest_kept = max(self.longest_kept, len(raw))
        self.bytes_read += size
        return raw, size

    def __iter__(self) -> Iterator[InputRecord]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Close the file."""
        self._f.close()


class CsvReader(LeadReader):
    """CSV with a header row (RFC 4180 quoting, strict: bad quoting rejects the record)."""

    def __init__(self, path: Path, max_field_size: int = MAX_FIELD_SIZE, **kw: Any) -> None:
        super().__init__(path, max_field_size, **kw)
        self._raw: list[str] = []
        self._raw_len = 0
        self._first = True
        self._physical = 0  # physical lines read
        self._line_base = 0  # physical lines before the current csv.reader started
        self._overlong: tuple[int, int] | None = None  # (line, bytes) of a line over the limit
        # the csv module's limit is process-wide: raise it when needed, never lower it under other
        # readers in this process; fields over max_field_size are rejected below, one by one
        csv.field_size_limit(max(csv.field_size_limit(), self.line_limit))
        self._rows = self._reader()
        try:
            self.columns = self._header()
        except BaseException:
            self.close()
            raise

    @property
    def line_limit(self) -> int:
        """A CSV line may hold several fields: ``CSV_LINE_FACTOR`` x ``max_field_size`` bytes."""
        return CSV_LINE_FACTOR * self.max_field_size

    def _reader(self) -> _CsvRows:
        return csv.reader(self._lines(), strict=True, delimiter=self.delimiter)

    def _line(self) -> int:
        """The physical line number where the next record starts."""
        return self._line_base + self._rows.line_num + 1

    def _overlong_error(self) -> str:
        line, size = self._overlong or (0, 0)
        return (f"line {line} is {size:,} bytes, longer than the limit of {self.line_limit:,} "
                f"({CSV_LINE_FACTOR} x --max-field-size)")

    def _restart(self) -> None:
        """Parse on from the line after an over-long one, with a fresh csv.reader."""
        self._overlong = None
        self._line_base = self._physical
        self._rows = self._reader()

    def _lines(self) -> Iterator[str]:
        while (got := self._readline()) is not None:
            raw, size = got
            self._physical += 1
            if size > self.line_limit:  # end this reader's input here; __iter__ rejects and restarts
                self._overlong = (self._physical, size)
                return
            text = raw.decode(self.encoding, "surrogateescape")
            if self._first:
                self._first = False
                text = text.removeprefix("\ufeff")
            if self._raw_len < _RAW_KEEP:
                self._raw.append(text[: _RAW_KEEP - self._raw_len])
                self._raw_len += len(text)
            yield text

    def _header(self) -> list[str]:
        while True:
            line = self._line()
            try:
                row = next(self._rows)
            except (StopIteration, csv.Error) as exc:
                if self._overlong is not None:
                    raise BatchError(f"{self.path}:{line}: the header's {self._overlong_error()}") from None
                if isinstance(exc, StopIteration):
                    return []
                raise BatchError(f"{self.path}:{line}: malformed CSV header: {exc}") from None
            if not row or row == [""]:
                continue
            if len(row) > MAX_COLUMNS:
                raise BatchError(f"{self.path}:{line}: the header has {len(row):,} columns, more than the limit "
                                 f"of {MAX_COLUMNS:,}")
            cols = [c.strip() for c in row]
            if any("\x00" in c for c in cols):
                raise BatchError(f"{self.path}:{line}: the header holds a NUL byte")
            for c in cols:
                if _SURROGATE.search(c):
                    raise BatchError(f"{self.path}:{line}: the header is not valid {_label(self.encoding)}: "
                                     "if the file comes from a CRM export, try --encoding latin-1")
            cols = [self.mapping.get(c, c) for c in cols]
            if any(not c for c in cols):
                raise BatchError(f"{self.path}:{line}: the header has an empty column name "
                                 f"(column {cols.index('') + 1})")
            dupes = sorted(c for c, k in Counter(cols).items() if k > 1)  # linear: a 1M-column header too
            if dupes:
                raise BatchError(f"{self.path}:{line}: the header names {', '.join(dupes)} more than once")
            return cols

    def __iter__(self) -> Iterator[InputRecord]:
        cols = self.columns or []
        n = len(cols)
        ordinal = 0
        while True:
            line = self._line()
            self._raw.clear()
            self._raw_len = 0
            try:
                row = next(self._rows)
            except (StopIteration, csv.Error) as exc:
                if self._overlong is not None:  # the record is dropped; parsing goes on after that line
                    yield InputRecord(ordinal, line, None, self._overlong_error(), self._raw_text())
                    ordinal += 1
                    self._restart()
                    continue
                if isinstance(exc, StopIteration):
                    return
                msg = str(exc)
                if "field larger than field limit" in msg:
                    msg = f"a field is larger than the limit of {self.max_field_size:,} characters"
                yield InputRecord(ordinal, line, None, f"malformed CSV: {msg}", self._raw_text())
                ordinal += 1
                continue
            if not row or row == [""]:
                continue
            if len(row) > n and not any(v.strip() for v in row[n:]):
                row = row[:n]
            error = None
            if len(row) != n:
                error = f"the row has {len(row)} fields, the header has {n}"
            else:
                for c, v in zip(cols, row, strict=True):
                    if len(v) > self.max_field_size:
                        error = f"a field is larger than the limit of {self.max_field_size:,} characters"
                        break
                    if "\x00" in v:
                        error = f"a NUL byte in column {c!r}"
                        break
                    if _SURROGATE.search(v):
                        error = f"invalid {_label(self.encoding)} in column {c!r} (try --encoding latin-1)"
                        break
            if error is None:
                yield InputRecord(ordinal, line, dict(zip(cols, row, strict=True)))
            else:
                partial = dict(zip(cols, (_clean(v) for v in row), strict=False))
                yield InputRecord(ordinal, line, partial, error, self._raw_text())
            ordinal += 1

    def _raw_text(self) -> str:
        return _clean("".join(self._raw))[:_RAW_KEEP]


class JsonlReader(LeadReader):
    """One JSON object per line; blank lines are ignored."""

    def __iter__(self) -> Iterator[InputRecord]:
        ordinal = lineno = 0
        while (got := self._readline()) is not None:
            raw, size = got
            lineno += 1
            if not raw.strip():
                continue
            lead: dict[str, Any] | None = None
            error: str | None = None
            if size > self.max_field_size:
                error = f"the line is {size:,} bytes, more than the limit of {self.max_field_size:,}"
            else:
                try:
                    text = raw.decode(self.encoding)
                except UnicodeDecodeError as exc:
                    error = (f"invalid {_label(self.encoding)} at byte {exc.start + 1} of the line "
                             "(try --encoding latin-1)")
                else:
                    lead, error = self._parse(text.removeprefix("\ufeff") if lineno == 1 else text)
            if error is None and lead is not None:
                yield InputRecord(ordinal, lineno, lead)
            else:
                raw_text = _clean(raw[:_RAW_KEEP].decode("utf-8", "surrogateescape")).rstrip("\r\n")
                yield InputRecord(ordinal, lineno, lead, error, raw_text)
            ordinal += 1

    def _parse(self, text: str) -> tuple[dict[str, Any] | None, str | None]:
        try:
            obj = json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant, parse_float=_finite_float)
        except json.JSONDecodeError as exc:
            return None, f"invalid JSON: {exc.msg} (column {exc.colno})"
        except RecursionError:
            return None, "invalid JSON: nested too deep"
        except ValueError as exc:  # from the parse_* hooks: a huge integer, NaN, Infinity
            return None, f"invalid JSON: {exc}"
        if not isinstance(obj, dict):
            kind = {list: "an array", str: "a string", bool: "a boolean"}.get(type(obj), "a " + type(obj).__name__)
            return None, f"expected a JSON object, got {kind}"
        if self.mapping:
            obj = {self.mapping.get(k, k): v for k, v in obj.items()}
        for k, v in obj.items():
            if isinstance(v, dict | list):
                kind = "an object" if isinstance(v, dict) else "an array"
                return obj, f"field {k!r} is {kind}; expected text, a number, true/false or null"
            if isinstance(v, str) and len(v) > self.max_field_size:
                return obj, f"field {k!r} is larger than the limit of {self.max_field_size:,} characters"
            if isinstance(v, str) and "\x00" in v:
                return obj, f"field {k!r} holds a NUL character"
        missing = sorted(f for f in self.required if f not in obj)
        if missing:
            return obj, f"missing required field{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        return obj, None


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"a number of {len(text.lstrip('-')):,} digits is longer than the limit of {MAX_INT_DIGITS}")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a lead can hold")


def open_reader(path: Path, fmt: Format, max_field_size: int = MAX_FIELD_SIZE, **kw: Any) -> LeadReader:
    """A streaming reader of ``path`` (``encoding``, ``delimiter``, ``mapping`` as keywords)."""
    if fmt == "csv":
        return CsvReader(path, max_field_size, **kw)
    return JsonlReader(path, max_field_size, **kw)


def jsonl_keys(path: Path, max_lines: int = 100, **kw: Any) -> list[str] | None:
    """The keys of the first valid JSON object among the first lines of ``path``."""
    reader = JsonlReader(path, **kw)
    try:
        for rec in reader:
            if rec.error is None and rec.lead is not None:
                return list(rec.lead)
            if rec.ordinal >= max_lines:
                break
    finally:
        reader.close()
    return None


# ============================================================================ writing


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


class _Appender:
    """A file written from a byte offset on, buffered in memory between flushes."""

    def __init__(self, path: Path, offset: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = "r+b" if offset and path.exists() else "wb"
        self.path = path
        self._f = open(path, mode)  # noqa: SIM115 - closed by close()
        self._f.truncate(offset if mode == "r+b" else 0)
        self._f.seek(0, io.SEEK_END)
        self.offset = self._f.tell()
        self._buf = io.StringIO()
        self.pending = 0

    def flush(self) -> int:
        """Write the buffer to the file; returns the file's new length."""
        text = self._buf.getvalue()
        if text:
            self._f.write(text.encode("utf-8", "replace"))
            self._f.flush()
            self._buf.seek(0)
            self._buf.truncate()
            self.offset = self._f.tell()
        self.pending = 0
        return self.offset

    def close(self) -> None:
        """Flush and close."""
        self.flush()
        self._f.close()


class OutputWriter(_Appender):
    """The output file (CSV with ``columns``, or JSONL)."""

    def __init__(self, path: Path, fmt: Format, columns: Sequence[str] | None, offset: int = 0, *,
                 escape_formulas: bool = True) -> None:
        super().__init__(path, offset)
        self.fmt = fmt
        self.columns = list(columns or [])
        #: CSV cells a spreadsheet would run as formulas get a leading ' (see waystation.csvsafe)
        self.escape_formulas = escape_formulas
        self._csv = csv.writer(self._buf, lineterminator="\n")
        # with "\n" as line terminator the csv module leaves a lone "\r" unquoted, which readers take
        # for a line break: rows holding one are written with every cell quoted
        self._csv_all = csv.writer(self._buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
        self._known = set(self.columns)
        #: keys of output rows that CSV output has no column for (dropped; first 20 names)
        self.dropped: set[str] = set()
        if fmt == "csv" and self.offset == 0:
            self._csv.writerow(escape_row(self.columns) if escape_formulas else self.columns)
            self.flush()

    def write(self, row: Mapping[str, Any]) -> None:
        """Buffer one output row."""
        if self.fmt == "csv":
            # (no surrogate can reach here: input with invalid UTF-8 is cleaned when rejected, and
            # the file is encoded with errors="replace" anyway)
            cells = [_cell(row.get(c)) for c in self.columns]
            if self.escape_formulas:
                cells = escape_row(cells)
            (self._csv_all if any("\r" in c for c in cells) else self._csv).writerow(cells)
            if len(row) > len(self._known) or not self._known.issuperset(row):
                extra = [k for k in row if k not in self._known]
                if extra and len(self.dropped) < 20:
                    self.dropped.update(extra[: 20 - len(self.dropped)])
        else:
            self._buf.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        self.pending += 1


class RejectsWriter(_Appender):
    """The rejects file (JSONL): failed leads and rejected records.

    Created only when there is something to write: a run with no failed or rejected lead leaves
    no (empty) rejects file, and a stale one from an earlier run at the same path is removed.
    """

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self.offset = offset
        self.pending = 0
        self._buf = io.StringIO()
        self._opened = False
        if offset and path.exists():
            self._open()
        elif not offset:
            path.unlink(missing_ok=True)

    def _open(self) -> None:
        super().__init__(self.path, self.offset)
        self._opened = True

    @property
    def created(self) -> bool:
        """Whether the file exists (something was written to it, now or before a resume)."""
        return self._opened

    def write(self, entry: Mapping[str, Any]) -> None:
        """Buffer one entry."""
        self._buf.write(_clean(json.dumps(entry, ensure_ascii=False, default=str)) + "\n")
        self.pending += 1

    def flush(self) -> int:
        """Write the buffer (creating the file on the first entry); returns the file's length."""
        if not self._opened:
            if not self._buf.getvalue():
                self.pending = 0
                return self.offset
            buffered = self._buf.getvalue()
            self._open()
            self._buf.write(buffered)
        return super().flush()

    def close(self) -> None:
        """Flush and close (nothing to close when nothing was written)."""
        self.flush()
        if self._opened:
            self._f.close()


# ============================================================================ the runner


@dataclass
class BatchConfig:
    """What ``waystation run`` was asked to do (paths as the user gave them)."""

    route: Path
    input: Path
    output: Path | None = None
    rejects: Path | None = None
    input_format: str | None = None
    output_format: str | None = None
    concurrency: int = 16
    budget_total: float | None = None
    checkpoint: str = DEFAULT_SQLITE_URL
    run_id: str | None = None
    resume: str | None = None
    limit: int | None = None
    grace: float = 10.0
    max_field_size: int = MAX_FIELD_SIZE
    progress: bool = False
    metrics_port: int | None = None
    metrics_addr: str = "127.0.0.1"
    report_path: Path | None = None
    flush_every: float = 0.5
    handle_signals: bool = False
    #: the checkpoint URL came from ``WAYSTATION_CHECKPOINT``: the resume command leaves it there
    checkpoint_from_env: bool = False
    #: neutralise CSV formula injection in the CSV output (``--csv-formulas keep`` turns it off)
    escape_formulas: bool = True
    #: the run history store (``None``: :func:`waystation.history.default_history_url`); ``""``: keep none
    history: str | None = None
    #: input column → lead field renames (``--map``; added to the route's ``map:``)
    maps: dict[str, str] = field(default_factory=dict)
    #: CSV field delimiter (``--delimiter``) and text encoding of the input (``--encoding``)
    delimiter: str = ","
    encoding: str = "utf-8"

    def reader_options(self, route: Route) -> dict[str, Any]:
        """Keyword arguments of :func:`open_reader` for this run."""
        return {"encoding": self.encoding, "delimiter": self.delimiter,
                "mapping": {**route.spec.map, **self.maps}}

    def output_path(self) -> Path:
        """``output``, or ``<input stem>.out.<ext>`` next to the input."""
        if self.output is not None:
            return self.output
        ext = "." + (self.output_format or detect_format(self.input, self.input_format))
        return self.input.with_name(f"{self.input.stem}.out{ext}")

    def rejects_path(self) -> Path:
        """``rejects``, or ``<output stem>.rejects.jsonl`` next to the output."""
        if self.rejects is not None:
            return self.rejects
        out = self.output_path()
        return out.with_name(f"{out.stem}.rejects.jsonl")


@dataclass
class BatchResult:
    """How a batch ended."""

    run_id: str
    report: Report
    output: Path
    rejects: Path
    written: int
    exit_code: int = 0
    interrupted_by: int | None = None
    error: str | None = None
    resume_command: str | None = None
    resumed: bool = False


@dataclass
class _Entry:
    rec: InputRecord
    lead_id: str | None
    task: asyncio.Task[LeadResult] | None


@dataclass
class _State:
    written: int = 0
    leads: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LEAD_STATUSES, 0))
    causes: dict[str, int] = field(default_factory=dict)
    session_written: int = 0
    dial: ExportTally = field(default_factory=ExportTally)


def new_run_id(route_name: str) -> str:
    """``<route>-<UTC timestamp>-<4 hex>``: sortable and unique enough."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", route_name).strip("-").lower() or "run"
    return f"{slug}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


#: Suffix of the column that keeps an input value a station changed (see "Input is never lost").
INPUT_SUFFIX = "_input"


def provided_fields(plan: Plan) -> frozenset[str]:
    """Every field some step of ``plan`` may set (or clear)."""
    return frozenset(f for s in plan.steps for f in s.provides)


def output_columns(plan: Plan, input_columns: Sequence[str]) -> list[str]:
    """Input columns, then ``<column>_input`` for each input column a step may change, then each
    field the route may add (route order), then the status columns."""
    cols = list(input_columns)
    seen = set(cols)
    provided = provided_fields(plan)
    for c in input_columns:
        kept = c + INPUT_SUFFIX
        if c in provided and kept not in seen:
            cols.append(kept)
            seen.add(kept)
    for s in plan.steps:
        for f in s.provides:
            if f not in seen:
                cols.append(f)
                seen.add(f)
    return cols + [c for c in STATUS_COLUMNS if c not in seen]


def output_row(record: Mapping[str, Any] | None, data: Mapping[str, Any], provided: frozenset[str]) -> dict[str, Any]:
    """One output row: the lead's final ``data`` (a field a station normalised, filled in or cleared
    holds the route's value) plus, for every input field a step may change, ``<field>_input`` with
    the value the file had. So no input value is ever lost."""
    row = dict(data)
    for k, v in (record or {}).items():
        if k in provided and k + INPUT_SUFFIX not in (record or {}):
            row[k + INPUT_SUFFIX] = v
    return row


def input_fields(cfg: BatchConfig, route: Route) -> tuple[Format, list[str] | None, list[str] | None]:
    """The input format, the CSV header (``None`` for JSONL) and the input's real fields (CSV
    header or first JSONL record, after ``--map``; ``None`` when no JSONL record could be read)."""
    fmt = detect_format(cfg.input, cfg.input_format)
    if not cfg.input.is_file():
        raise BatchError(f"{cfg.input}: no such file")
    opts = cfg.reader_options(route)
    if fmt == "csv":
        reader = CsvReader(cfg.input, cfg.max_field_size, **opts)
        reader.close()
        if not reader.columns:
            raise BatchError(f"{cfg.input}: empty file: a CSV input starts with a header row")
        return fmt, reader.columns, reader.columns
    keys = jsonl_keys(cfg.input, **opts)
    if not keys:
        return fmt, None, None
    return fmt, None, sorted(set(keys) | set(route.spec.input or ()))


def compile_for_input(cfg: BatchConfig, host: PluginHost) -> tuple[Route, Plan, Format, list[str] | None]:
    """Load the route, compile it and run the preflight checks against the input's real columns
    (:mod:`waystation.preflight`); raises ``RouteError`` listing every problem. Preflight
    warnings are added to ``plan.warnings``."""
    from waystation.errors import RouteError
    from waystation.preflight import preflight

    route = Route.from_file(cfg.route)
    fmt, header, fields = input_fields(cfg, route)
    if fields is None:  # nothing readable yet: the standard input fields (or the route's input:)
        plan = compile_route(route, host, None)
    else:
        # every required field counts as present for compiling: preflight reports a missing
        # input column itself, with the closest column and the --map that fixes it
        plan = compile_route(route, host, set(fields) | _all_required(route, host))
    found = preflight(plan, fields, what=str(cfg.input), delimiter=cfg.delimiter)
    if found.errors:
        raise RouteError(found.errors)
    plan.warnings.extend(found.warnings)
    return route, plan, fmt, header


def _all_required(route: Route, host: PluginHost) -> set[str]:
    out: set[str] = set()
    for spec in route.spec.steps:
        cls = host.get(spec.station)
        if cls is not None:
            out.update(cls.requires)
    return out


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def _abs(path: Path) -> str:
    return str(path.resolve())


class BatchRunner:
    """Runs one batch (see the module docstring). ``await BatchRunner(cfg, host).run()``."""

    def __init__(self, cfg: BatchConfig, host: PluginHost, *, console: Console | None = None,
                 err: Callable[[str], None] | None = None, store: CheckpointStore | None = None) -> None:
        self.cfg = cfg
        self.host = host
        self._store = store
        self.console = console
        self._err = err or (lambda msg: log.warning("%s", msg))
        self._stopping = False
        self._halted = False
        self._exhausted = False
        self._signal: int | None = None
        self._fatal: BaseException | None = None
        self._tasks: set[asyncio.Task[LeadResult]] = set()
        self._cancel_handle: asyncio.TimerHandle | None = None
        self._progress: Progress | None = None
        self._provided: frozenset[str] = frozenset()
        self._task_id: TaskID | None = None
        self.resume_command = ""

    # -- public -------------------------------------------------------------------------------

    def command(self, run_id: str) -> str:
        """The exact command that resumes this run."""
        c = self.cfg
        parts = ["waystation", "run", str(c.route), str(c.input), "-o", str(c.output_path()),
                 "--resume", run_id]
        if c.checkpoint != DEFAULT_SQLITE_URL and not c.checkpoint_from_env:
            # a password never appears: it shows as *** (keep it in WAYSTATION_CHECKPOINT instead)
            parts += ["--checkpoint", redact_url(c.checkpoint)]
        if c.rejects is not None:
            parts += ["--rejects", str(c.rejects)]
        if c.input_format:
            parts += ["--format", c.input_format]
        if c.output_format:
            parts += ["--output-format", c.output_format]
        if c.concurrency != BatchConfig.concurrency:
            parts += ["--concurrency", str(c.concurrency)]
        if c.budget_total is not None:
            parts += ["--budget-total", f"{c.budget_total:g}"]
        if c.limit is not None:
            parts += ["--limit", str(c.limit)]
        if c.grace != BatchConfig.grace:
            parts += ["--grace", f"{c.grace:g}"]
        if c.max_field_size != MAX_FIELD_SIZE:
            parts += ["--max-field-size", str(c.max_field_size)]
        if not c.escape_formulas:
            parts += ["--csv-formulas", "keep"]
        for src, dst in c.maps.items():
            parts += ["--map", f"{src}={dst}"]
        if c.delimiter != ",":
            parts += ["--delimiter", c.delimiter]
        if c.encoding != "utf-8":
            parts += ["--encoding", c.encoding]
        return shlex.join(parts)

    def request_stop(self, signum: int | None = None) -> None:
        """Stop taking new leads; cancel those in flight after the grace period."""
        if self._stopping:
            return
        self._stopping = True
        self._signal = signum
        loop = asyncio.get_running_loop()
        self._cancel_handle = loop.call_later(self.cfg.grace, self._cancel_inflight)

    async def run(self) -> BatchResult:
        """Run the batch to its end (or its interruption); see :class:`BatchResult`."""
        cfg = self.cfg
        if cfg.concurrency < 1:
            raise BatchError("--concurrency must be at least 1")
        route, plan, fmt, header = compile_for_input(cfg, self.host)
        for notice in credential_overrides(plan):
            self._err(f"warning: {notice}")
        out_path, rej_path = cfg.output_path(), cfg.rejects_path()
        if out_path.resolve() == cfg.input.resolve():
            raise BatchError(f"{out_path}: the output would overwrite the input")
        out_fmt: Format = detect_format(out_path, cfg.output_format) if cfg.output_format or \
            out_path.suffix.lower() in (".csv", ".jsonl", ".ndjson", ".json") else fmt
        store = self._store if self._store is not None else open_store(cfg.checkpoint)
        try:
            return await self._run(store, route, plan, fmt, header, out_path, rej_path, out_fmt)
        finally:
            if self._store is None:
                await store.close()

    # -- the run ------------------------------------------------------------------------------

    async def _run(self, store: CheckpointStore, route: Route, plan: Plan, fmt: Format,
                   header: list[str] | None, out_path: Path, rej_path: Path, out_fmt: Format) -> BatchResult:
        cfg = self.cfg
        now = time.time()
        steps = [[s.id, s.spec.station] for s in plan.steps]
        resumed = cfg.resume is not None
        state = _State()
        batch_budget = Budget(cfg.budget_total, name="batch")
        if cfg.resume is not None:
            run_id = cfg.resume
            meta = await store.load_run(run_id)
            if meta is None:
                raise BatchError(f"no run {run_id!r} in {redact_url(cfg.checkpoint)}")
            if meta.get("route_name") != route.name:
                raise BatchError(f"run {run_id!r} ran route {meta.get('route_name')!r}, not {route.name!r}")
            if meta.get("input") != _abs(cfg.input):
                raise BatchError(f"run {run_id!r} read {meta.get('input')}, not {_abs(cfg.input)}")
            if meta.get("status") == "complete":
                self._err(f"run {run_id} is already complete; checking its output")
            if meta.get("steps") and meta["steps"] != steps:
                self._err(f"warning: the route's steps changed since run {run_id} started; finished leads "
                          "keep their results, the others continue on the new steps")
            if int(meta.get("input_size", 0)) > _size(cfg.input):
                self._err(f"warning: {cfg.input} is smaller than when run {run_id} started; "
                          "resuming by record position")
            out_offset, rej_offset = int(meta.get("out_offset", 0)), int(meta.get("rej_offset", 0))
            columns = meta.get("out_columns")
            if out_offset and (_size(out_path) < out_offset or _size(rej_path) < rej_offset):
                self._err(f"{out_path} is missing or shorter than recorded; rewriting it from the checkpoints")
                out_offset = rej_offset = 0
            held = int((meta.get("leads") or {}).get("held", 0))
            if out_offset and held:
                self._err(f"run {run_id} has {held} held lead(s): retrying them; the output is rewritten "
                          "from the checkpoints (finished leads are not run again)")
                out_offset = rej_offset = 0
            if out_offset:
                state.written = int(meta.get("written", 0))
                state.leads.update(meta.get("leads") or {})
                state.dial = ExportTally(meta.get("dial"))
                state.causes.update(meta.get("causes") or {})
            ledger = await budget_ledger(store, run_id)
            ledger.restore(batch_budget)
            for item in ledger.rejected:
                self._err(f"warning: a saved state of run {run_id} was rejected (no spend credited from it): {item}")
            started_at = float(meta.get("started_at") or now)
        else:
            run_id = cfg.run_id or new_run_id(route.name)
            if await store.load_run(run_id) is not None:
                raise BatchError(f"run {run_id!r} already exists in {redact_url(cfg.checkpoint)}: "
                                 f"resume it with --resume {run_id}, or pick another --run-id")
            out_offset = rej_offset = 0
            columns = None
            meta = {}
            started_at = now
        if out_fmt == "csv" and not columns:
            base = header if header is not None else (jsonl_keys(cfg.input, **cfg.reader_options(route)) or [])
            columns = output_columns(plan, base)
        self.resume_command = self.command(run_id)
        meta.update({
            "run_id": run_id, "route_file": _abs(cfg.route), "route_name": route.name,
            "input": _abs(cfg.input), "input_format": fmt, "output": _abs(out_path),
            "output_format": out_fmt, "rejects": _abs(rej_path),
            "checkpoint": redact_url(cfg.checkpoint), "steps": steps, "out_columns": columns,
            "options": {"concurrency": cfg.concurrency, "budget_total": cfg.budget_total,
                        "limit": cfg.limit, "grace": cfg.grace},
            "status": "running", "written": state.written, "out_offset": out_offset,
            "rej_offset": rej_offset, "leads": state.leads, "started_at": started_at, "updated_at": now,
            "resume_command": self.resume_command, "input_size": _size(cfg.input),
        })
        metrics = Metrics() if cfg.metrics_port is not None else None
        if metrics is not None and cfg.metrics_port is not None:
            metrics.serve(cfg.metrics_port, cfg.metrics_addr)  # a busy port fails before anything is recorded
        try:
            await store.save_run(run_id, meta)
        except BaseException:
            if metrics is not None:
                metrics.stop()
            raise

        from waystation.history.collector import HistoryRecorder

        collector = ReportCollector(run_id, route.name, [(s.id, s.spec.station) for s in plan.steps])
        recorder = HistoryRecorder(None, plan, run_id, input_name=_abs(cfg.input), input_size=_size(cfg.input),
                                   started_at=started_at)
        # this run's own collectors: called by this run's engine only, never registered on the
        # shared plugin manager (two batches in one process never count each other's leads)
        observers: list[object] = [collector, recorder]
        if metrics is not None:
            from waystation.resilience.metrics import ResilienceMetrics

            observers += [metrics, ResilienceMetrics(metrics.registry)]
        engine = Engine(plan, self.host, checkpointer=store, run_id=run_id, batch_budget=batch_budget,
                        observers=observers)
        reader = open_reader(cfg.input, fmt, cfg.max_field_size, **cfg.reader_options(route))
        reader.required = frozenset(plan.requirements())
        self._provided = provided_fields(plan)
        output = OutputWriter(out_path, out_fmt, columns, out_offset, escape_formulas=cfg.escape_formulas)
        rejects = RejectsWriter(rej_path, rej_offset)
        loop = asyncio.get_running_loop()
        installed: list[int] = []
        try:
            if cfg.handle_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, self._on_signal, sig)
                    installed.append(sig)
            await engine.hooks.notify("before_batch", route=plan)
            self._start_progress(reader, state, batch_budget)
            t0 = time.monotonic()
            try:
                await self._pump(engine, reader, output, rejects, store, run_id, meta, state, batch_budget)
            except Exception as exc:  # the store or the output failed: stop, keep what is durable
                self._fatal = exc
                self._err(f"the batch broke off: {type(exc).__name__}: {exc}")
            finally:
                self._stop_progress()
                if self._cancel_handle is not None:
                    self._cancel_handle.cancel()
            elapsed = time.monotonic() - t0
            complete = self._exhausted and not (self._halted or self._fatal)
            if resumed and not self._fatal:
                report = await report_from_store(store, run_id, route=route.name,
                                                 steps=[(s, st) for s, st in steps],
                                                 leads=state.leads if complete else None,
                                                 complete=complete, budget_total=cfg.budget_total)
                if not complete:
                    report.leads["rejected"] = state.leads.get("rejected", 0)
            else:
                report = collector.report(state.leads, complete=complete, budget_total=cfg.budget_total)
            if complete or not resumed:
                report.causes = dict(sorted(state.causes.items(), key=lambda kv: (-kv[1], kv[0])))
            report.overrun = batch_budget.overrun_micros / 1_000_000
            report.started_at = started_at
            report.elapsed = elapsed
            if not state.dial.empty:
                report.dial = state.dial.as_dict()
            meta.update({"status": "complete" if complete else ("failed" if self._fatal else "interrupted"),
                         "report": report.as_dict(), "updated_at": time.time(),
                         "interrupted_by": self._signal})
            try:
                await store.save_run(run_id, meta)
            except Exception as exc:
                if self._fatal is None:
                    raise
                self._err(f"could not record the run's end either ({type(exc).__name__}: {exc}); the "
                          "output offsets last recorded still hold")
            await self._record_history(store, run_id, recorder, report, resumed and not self._fatal, complete)
            await engine.hooks.notify("after_batch", route=plan, report=report)
            if cfg.report_path is not None:
                cfg.report_path.parent.mkdir(parents=True, exist_ok=True)
                cfg.report_path.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            reader.close()
            output.close()
            if output.dropped:
                self._err(f"warning: some records have fields the CSV output has no column for (dropped: "
                          f"{', '.join(sorted(output.dropped))}); use JSONL output to keep them")
            rejects.close()
            if metrics is not None:
                metrics.stop()
            await engine.close()
        code = 0
        error = None
        if self._fatal is not None:
            code, error = 1, f"{type(self._fatal).__name__}: {self._fatal}"
        elif not complete:
            code = 128 + int(self._signal or signal.SIGINT)
        elif state.dial.refusal() is not None:  # stale dial evidence: the export is refused
            code, error = 1, state.dial.refusal()
        return BatchResult(run_id, report, out_path, rej_path, state.written, code, self._signal, error,
                           self.resume_command if code else None, resumed)

    async def _record_history(self, store: CheckpointStore, run_id: str, recorder: HistoryRecorder,
                              report: Report, from_states: bool, complete: bool) -> None:
        """Keep the run's figures in the history store (a resumed run's from every saved state).
        A history that cannot be written is reported; the run's own results are not affected."""
        from waystation.history import default_history_url, open_history

        if self.cfg.history == "":
            return
        if from_states:
            rebuilt = recorder.empty_copy()
            async for state in store.iter_states(run_id):
                rebuilt.add_state(state)
            recorder = rebuilt
        snap = recorder.snapshot(finished=complete)
        snap.leads = {k: v for k, v in report.leads.items() if v}
        url = self.cfg.history or default_history_url(self.cfg.checkpoint)
        if url is None:  # an in-process checkpoint store: nothing outlives the process
            return
        try:
            history = open_history(url)
            try:
                await history.record(snap)
            finally:
                await history.close()
        except Exception as exc:
            self._err(f"warning: the run's history could not be written to {redact_url(url)} "
                      f"({type(exc).__name__}: {exc}); `waystation estimate` will not see this run")

    async def _pump(self, engine: Engine, reader: LeadReader, output: OutputWriter, rejects: RejectsWriter,
                    store: CheckpointStore, run_id: str, meta: dict[str, Any], state: _State,
                    batch_budget: Budget) -> None:
        window = max(64, 4 * self.cfg.concurrency)
        queue: asyncio.Queue[_Entry | None] = asyncio.Queue(maxsize=window)
        producer = asyncio.create_task(self._produce(engine, reader, queue, state.written))
        try:
            await self._consume(queue, output, rejects, store, run_id, meta, state, batch_budget, reader)
        finally:
            if not producer.done():  # the consumer broke off (e.g. the store failed)
                self._stopping = True
                producer.cancel()
                while not producer.done():  # its last put (the end marker) needs room
                    while not queue.empty():
                        queue.get_nowait()
                    await asyncio.sleep(0)
            with contextlib.suppress(asyncio.CancelledError):
                await producer
            if self._tasks:
                for t in list(self._tasks):
                    t.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _produce(self, engine: Engine, reader: LeadReader, queue: asyncio.Queue[_Entry | None],
                       skip: int) -> None:
        sem = asyncio.Semaphore(self.cfg.concurrency)
        inflight: dict[str, asyncio.Task[LeadResult]] = {}
        contents: dict[str, str] = {}  # lead id -> content hash of the lead running under it
        limit = self.cfg.limit
        n = 0
        try:
            for rec in reader:
                if limit is not None and rec.ordinal >= limit:
                    self._exhausted = True
                    break
                if self._stopping:
                    break
                n += 1
                if n % 256 == 0:
                    await asyncio.sleep(0)
                if rec.ordinal < skip:
                    continue
                entry = _Entry(rec, None, None)
                if rec.error is None and rec.lead is not None:
                    lid = lead_id_of(rec.lead)
                    task = inflight.get(lid)
                    if task is not None and contents.get(lid) != content_hash(rec.lead):
                        # the same id for another person: never share their run; the other goes first
                        await asyncio.wait([task])
                        task = None
                    if task is None:
                        await sem.acquire()
                        if self._stopping:
                            sem.release()
                            break
                        task = asyncio.create_task(run_settled(engine, rec.lead, lead_id=lid))
                        inflight[lid] = task
                        contents[lid] = content_hash(rec.lead)
                        self._tasks.add(task)
                        task.add_done_callback(functools.partial(self._lead_done, lid, sem, inflight, contents))
                    entry = _Entry(rec, lid, task)
                await queue.put(entry)
            else:
                self._exhausted = True
        finally:
            # never blocks for long: the consumer drains the queue to the end
            await queue.put(None)

    def _lead_done(self, lid: str, sem: asyncio.Semaphore, inflight: dict[str, asyncio.Task[LeadResult]],
                   contents: dict[str, str], task: asyncio.Task[LeadResult]) -> None:
        if inflight.get(lid) is task:
            del inflight[lid]
            contents.pop(lid, None)
        self._tasks.discard(task)
        sem.release()

    async def _consume(self, queue: asyncio.Queue[_Entry | None], output: OutputWriter,
                       rejects: RejectsWriter, store: CheckpointStore, run_id: str, meta: dict[str, Any],
                       state: _State, batch_budget: Budget, reader: LeadReader) -> None:
        last = time.monotonic()

        async def flush() -> None:
            nonlocal last
            meta["out_offset"] = output.flush()
            meta["rej_offset"] = rejects.flush()
            meta["written"] = state.written
            meta["leads"] = state.leads
            meta["dial"] = state.dial.as_dict()
            meta["causes"] = state.causes
            meta["updated_at"] = time.time()
            await store.save_run(run_id, meta)
            last = time.monotonic()
            self._update_progress(reader, state, batch_budget)

        while True:
            entry = await queue.get()
            if entry is None:
                break
            if self._halted:
                continue
            result: LeadResult | None = None
            if entry.task is not None:
                if not entry.task.done():
                    if output.pending:
                        await flush()
                    await asyncio.wait([entry.task])
                if entry.task.cancelled():
                    self._halted = True
                    continue
                exc = entry.task.exception()
                if exc is not None:
                    self._fatal = exc
                    self._halted = True
                    self._err(f"lead {entry.lead_id} (line {entry.rec.line}): {type(exc).__name__}: {exc}; "
                              "stopping the batch")
                    self.request_stop(None)
                    self._cancel_inflight()
                    continue
                result = entry.task.result()
            self._write(entry, result, output, rejects, state)
            if time.monotonic() - last >= self.cfg.flush_every:
                await flush()
        await flush()

    def _write(self, entry: _Entry, result: LeadResult | None, output: OutputWriter, rejects: RejectsWriter,
               state: _State) -> None:
        rec = entry.rec
        if result is None:
            status, reason, lid, cost = "rejected", rec.error, entry.lead_id, 0.0
            data: dict[str, Any] = dict(rec.lead or {})
            if rec.lead and "id" in rec.lead and rec.lead.get("id") not in (None, ""):
                lid = str(rec.lead["id"])
        else:
            status, reason, lid, cost = result.status, result.reason, result.lead_id, result.total_cost
            # a dial verdict is re-checked as it is written out (docs/compliance.md)
            data = state.dial.check(output_row(rec.lead, result.data, self._provided))
        row = {**data, "_lead_id": lid, "_status": status, "_reason": reason, "_cost": round(cost, 6)}
        output.write(row)
        if status in ("failed", "rejected", "held"):
            entry_out: dict[str, Any] = {"line": rec.line, "lead_id": lid, "status": status, "reason": reason,
                                         "errors": list(result.errors) if result is not None else [],
                                         "input": rec.lead}
            if result is not None:
                entry_out["failed_steps"] = {sid: r.error for sid, r in result.steps.items()
                                             if r.status == "failed"}
            else:
                entry_out["raw"] = rec.raw
            rejects.write(entry_out)
        state.written += 1
        state.session_written += 1
        state.leads[status] = state.leads.get(status, 0) + 1
        cause = result.cause if result is not None else "rejected input"
        if cause:
            state.causes[cause] = state.causes.get(cause, 0) + 1

    # -- interrupts ---------------------------------------------------------------------------

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stopping:
            self._stop_progress()
            self._err(f"{name} again: exiting now. Every completed step is in the checkpoint; resume with:\n"
                      f"  {self.resume_command}")
            os._exit(128 + signum)
        self._err(f"{name}: no new leads; waiting up to {self.cfg.grace:g} s for {len(self._tasks)} "
                  "in flight (press Ctrl-C again to exit at once)")
        self.request_stop(signum)

    def _cancel_inflight(self) -> None:
        if self._tasks:
            self._err(f"cancelling {len(self._tasks)} leads still in flight (their completed steps are saved)")
        for t in list(self._tasks):
            t.cancel()

    # -- progress -----------------------------------------------------------------------------

    def _start_progress(self, reader: LeadReader, state: _State, budget: Budget) -> None:
        if not self.cfg.progress or self.console is None:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]{task.fields[leads]:>9,}[/bold] leads"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[rate]:>8.1f} leads/s"),
            TextColumn("spent ${task.fields[spend]:,.4f}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console, transient=False, refresh_per_second=4,
        )
        self._t0 = time.monotonic()
        self._task_id = self._progress.add_task("run", total=self._progress_total(reader), leads=state.written,
                                                rate=0.0, spend=budget.spent)
        self._progress.start()

    def _update_progress(self, reader: LeadReader, state: _State, budget: Budget) -> None:
        if self._progress is None or self._task_id is None:
            return
        elapsed = max(1e-9, time.monotonic() - self._t0)
        # with --limit the bar counts records (the file's bytes would end it at limit/size); else bytes
        done = state.written if self.cfg.limit is not None else reader.bytes_read
        self._progress.update(self._task_id, completed=done, leads=state.written,
                              rate=state.session_written / elapsed, spend=budget.spent)

    def _progress_total(self, reader: LeadReader) -> int:
        return max(1, self.cfg.limit) if self.cfg.limit is not None else max(1, reader.size)

    def _stop_progress(self) -> None:
        if self._progress is not None and self._task_id is not None \
                and self._exhausted and not (self._halted or self._fatal):
            with contextlib.suppress(Exception):  # a finished run ends at 100%
                total = self._progress.tasks[0].total
                self._progress.update(self._task_id, completed=total)
        if self._progress is not None:
            with contextlib.suppress(Exception):
                self._progress.stop()
            self._progress = None


async def run_batch(cfg: BatchConfig, host: PluginHost, **kwargs: Any) -> BatchResult:
    """Run a batch (shortcut for ``await BatchRunner(cfg, host, **kwargs).run()``)."""
    return await BatchRunner(cfg, host, **kwargs).run()
