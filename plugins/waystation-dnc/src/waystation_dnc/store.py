"""The local Do-Not-Call store: an indexed SQLite file loaded from registry files.

Three lists live side by side in one table, keyed by ``(number, list)``:

- ``federal``: the FTC National DNC Registry. A *full list* file holds every registered number of
  one or more area codes; importing it **replaces** what the store held for those area codes. A
  *change list* adds and deletes numbers incrementally (one record per line: the number, an
  add/delete indicator, and usually a date).
- ``internal``: the user's own do-not-call list (people who asked not to be called).
- ``litigator``: known TCPA litigators.

Numbers are stored as 10-digit NANP integers. Files may be plain text, ``.gz`` or ``.zip`` (every
member of the archive is read); a line holds one number (``2125550123``, ``(212) 555-0123``,
``1-212-555-0123``) or an ``areacode,number`` pair (``212,5550123``). Import streams the file in
chunks of :data:`CHUNK` numbers, so a 10-million-number file is loaded in bounded memory, inside
one transaction (a failed import leaves the store as it was). A file already imported (same path,
size and modification time) is not imported again unless forced.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import sqlite3
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal, TextIO, cast

from waystation_dnc.lists import LISTS, Action, ListName

__all__ = ["CHUNK", "LISTS", "MAX_AGE_DAYS", "DNCFileError", "DNCStore", "DataSource", "ImportResult", "ListStatus",
           "normalize_number"]


#: Numbers per ``executemany`` batch during an import.
CHUNK = 50_000
#: The FTC requires scrubbing against registry data at most this many days old.
MAX_AGE_DAYS = 31
_AC = 10_000_000

_ADD = frozenset({"A", "ADD", "ADDED", "ADDITION", "I", "INS", "INSERT", "N", "NEW", "+"})
_DELETE = frozenset({"D", "DEL", "DELETE", "DELETED", "DELETION", "R", "REM", "REMOVE", "REMOVED", "-", "X"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS numbers (
    number INTEGER NOT NULL,
    list TEXT NOT NULL,
    PRIMARY KEY (number, list)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS area_codes (
    list TEXT NOT NULL,
    area_code INTEGER NOT NULL,
    numbers INTEGER NOT NULL DEFAULT 0,
    full_as_of TEXT,
    changes_as_of TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (list, area_code)
);
CREATE TABLE IF NOT EXISTS imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    list TEXT NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    lines INTEGER NOT NULL,
    added INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    rejected INTEGER NOT NULL,
    as_of TEXT NOT NULL,
    imported_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS imports_fingerprint ON imports (fingerprint, list, kind);
"""


_SET_FULL_AS_OF = "UPDATE area_codes SET full_as_of = ?, full_source = ? WHERE list = ? AND area_code = ?"
_SET_CHANGES_AS_OF = "UPDATE area_codes SET changes_as_of = ?, changes_source = ? WHERE list = ? AND area_code = ?"
#: Columns added after the first release (added to an older store when it is opened).
_LATER_COLUMNS = (("area_codes", "full_source", "TEXT"), ("area_codes", "changes_source", "TEXT"))


@dataclass(frozen=True)
class DataSource:
    """Where a list's answer for a number comes from: the file and the date of its data."""

    list_name: str
    file: str | None
    as_of: str | None


class DNCFileError(ValueError):
    """A registry file that cannot be read or imported (the message names the file)."""


def now_utc() -> datetime:
    """The current time in UTC (a function so tests can reason about ages)."""
    return datetime.now(UTC)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds")


def parse_time(text: str) -> datetime:
    """An ISO date or date-time as an aware UTC datetime (a bare date means midnight UTC)."""
    dt = datetime.fromisoformat(text)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def normalize_number(text: str) -> int | None:
    """A US/NANP phone number as a 10-digit integer, or ``None`` when it is not one.

    Accepts any punctuation (``(212) 555-0123``, ``+1 212.555.0123``); an 11-digit number must
    start with the country code 1. Area code and exchange must start with 2-9 (NANP rules).
    """
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    if len(digits) != 10 or digits[0] in "01" or digits[3] in "01":
        return None
    return int(digits)


def area_code(number: int) -> int:
    """The area code of a 10-digit number."""
    return number // _AC


def _number_fields(parts: list[str]) -> tuple[int | None, int]:
    """The number in the leading field(s) of a record, and how many fields it used."""
    if len(parts) >= 2:
        a = "".join(ch for ch in parts[0] if ch.isdigit())
        b = "".join(ch for ch in parts[1] if ch.isdigit())
        if len(a) == 3 and len(b) == 7:
            return normalize_number(a + b), 2
    return normalize_number(parts[0]), 1


@dataclass
class Record:
    """One parsed line: the number and, for a change list, the action."""

    number: int
    action: Action = "add"


class _Rejects:
    def __init__(self) -> None:
        self.count = 0
        self.examples: list[str] = []

    def add(self, where: str, line: str, why: str) -> None:
        self.count += 1
        if len(self.examples) < 5:
            shown = line.strip()
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            self.examples.append(f"{where}: {why}: {shown!r}")


def parse_lines(lines: Iterable[str], source: str, *, changes: bool, default_action: Action | None,
                rejects: _Rejects) -> Iterator[Record]:
    """Parse registry lines into records; bad lines are counted in ``rejects`` with file:line.

    Blank lines, ``#`` comments and lines without a digit (headers) are skipped silently.
    """
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip().lstrip("\ufeff")
        if not line or line.startswith("#") or not any(ch.isdigit() for ch in line):
            continue
        parts = [p.strip().strip('"') for p in line.replace("\t", ",").replace(";", ",").split(",")]
        number, used = _number_fields(parts)
        if number is None:
            rejects.add(f"{source}:{lineno}", line, "not a 10-digit US phone number")
            continue
        if not changes:
            yield Record(number)
            continue
        action: Action | None = None
        for p in parts[used:]:
            token = p.upper()
            if token in _ADD:
                action = "add"
                break
            if token in _DELETE:
                action = "delete"
                break
        action = action or default_action
        if action is None:
            rejects.add(f"{source}:{lineno}", line, "no add/delete indicator (A or D) in change record")
            continue
        yield Record(number, action)


@contextlib.contextmanager
def _text(stream: IO[bytes] | gzip.GzipFile) -> Iterator[TextIO]:
    wrapper = io.TextIOWrapper(cast(Any, stream), encoding="utf-8", errors="replace", newline=None)
    try:
        yield wrapper
    finally:
        wrapper.close()


def iter_sources(path: Path) -> Iterator[tuple[str, Iterator[str]]]:
    """Every text stream in ``path`` (a plain file, a ``.gz`` file, or each member of a ``.zip``),
    as ``(name for messages, line iterator)``. Streams are read lazily."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.is_dir() or info.filename.startswith("__MACOSX/"):
                    continue
                with zf.open(info) as raw, _text(raw) as fh:
                    yield f"{path.name}!{info.filename}", iter(fh)
        return
    with open(path, "rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    if gz:
        with gzip.open(path, "rb") as gz_raw, _text(gz_raw) as gz_fh:
            yield path.name, iter(gz_fh)
        return
    with open(path, encoding="utf-8", errors="replace", newline=None) as fh:
        yield path.name, iter(fh)


@dataclass
class ImportResult:
    """What one file's import did."""

    source: str
    list_name: ListName
    kind: Literal["full", "changes"]
    skipped: bool = False
    lines: int = 0
    added: int = 0
    deleted: int = 0
    replaced: int = 0
    rejected: int = 0
    area_codes: list[int] = field(default_factory=list)
    rejected_examples: list[str] = field(default_factory=list)
    as_of: str = ""


@dataclass
class ListStatus:
    """The state of one list in the store."""

    list_name: ListName
    numbers: int
    area_codes: list[int]
    oldest: str | None
    newest: str | None
    last_import: str | None
    age_days: float | None

    @property
    def stale(self) -> bool:
        """Whether some of its data is older than :data:`MAX_AGE_DAYS`."""
        return self.age_days is not None and self.age_days > MAX_AGE_DAYS


def fingerprint(path: Path) -> str:
    """An identity of a file's version: resolved path, size and modification time."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class DNCStore:
    """A Do-Not-Call store in one SQLite file (created with its parent directory if missing).

    Use one instance per thread. ``lookup`` is an indexed primary-key read.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        except sqlite3.Error as exc:
            raise DNCFileError(f"cannot open DNC store {self.path}: {exc}") from None
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)
        for table, column, kind in _LATER_COLUMNS:
            have = {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> DNCStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------------

    def lookup(self, number: int, lists: Iterable[str] = LISTS) -> list[str]:
        """The lists (in :data:`LISTS` order) that hold ``number``."""
        wanted = set(lists)
        found = {row[0] for row in self.conn.execute("SELECT list FROM numbers WHERE number = ?", (number,))}
        return [name for name in LISTS if name in found and name in wanted]

    def sources(self, number: int, lists: Iterable[str] = LISTS) -> dict[str, DataSource]:
        """Per list, the data a lookup of ``number`` rests on: for ``federal``, the newest full or
        change list applied to the number's area code (file name and data date; ``as_of`` is
        ``None`` when no full list of that area code is loaded); for the other lists, their
        latest import."""
        out: dict[str, DataSource] = {}
        for name in lists:
            if name == "federal":
                row = self.conn.execute(
                    "SELECT full_as_of, full_source, changes_as_of, changes_source FROM area_codes "
                    "WHERE list = 'federal' AND area_code = ?", (area_code(number),)).fetchone()
                if row is None or row[0] is None:
                    out[name] = DataSource(name, None, None)
                elif row[2] and row[2] > row[0]:
                    out[name] = DataSource(name, row[3] or row[1], row[2])
                else:
                    out[name] = DataSource(name, row[1], row[0])
                continue
            last = self.conn.execute(
                "SELECT source, as_of FROM imports WHERE list = ? ORDER BY id DESC LIMIT 1", (name,)).fetchone()
            out[name] = DataSource(name, last[0] if last else None, last[1] if last else None)
        return out

    def loaded_area_codes(self, list_name: ListName = "federal") -> set[int]:
        """Area codes for which a full list was imported into ``list_name``."""
        rows = self.conn.execute(
            "SELECT area_code FROM area_codes WHERE list = ? AND full_as_of IS NOT NULL", (list_name,))
        return {r[0] for r in rows}

    def status(self, now: datetime | None = None) -> dict[ListName, ListStatus]:
        """Per list: numbers held, area codes loaded, oldest/newest data date, age in days."""
        now = now or now_utc()
        out: dict[ListName, ListStatus] = {}
        for name in LISTS:
            rows = self.conn.execute(
                "SELECT area_code, numbers, full_as_of, changes_as_of FROM area_codes WHERE list = ? "
                "ORDER BY area_code", (name,)).fetchall()
            last = self.conn.execute("SELECT MAX(imported_at) FROM imports WHERE list = ?", (name,)).fetchone()[0]
            fresh = [max(d for d in (r[2], r[3]) if d) for r in rows if r[2] or r[3]]
            oldest = min(fresh) if fresh else None
            newest = max(fresh) if fresh else None
            age = (now - parse_time(oldest)).total_seconds() / 86400 if oldest else None
            out[name] = ListStatus(
                list_name=name, numbers=sum(r[1] for r in rows),
                area_codes=[r[0] for r in rows if r[1] or r[2]], oldest=oldest, newest=newest,
                last_import=last, age_days=age)
        return out

    def imports(self, limit: int = 20) -> list[dict[str, object]]:
        """The most recent imports, newest first."""
        cur = self.conn.execute(
            "SELECT list, kind, source, lines, added, deleted, rejected, as_of, imported_at FROM imports "
            "ORDER BY id DESC LIMIT ?", (limit,))
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    # -- writing ------------------------------------------------------------------------------

    def import_file(
        self,
        path: str | os.PathLike[str],
        list_name: ListName = "federal",
        *,
        changes: bool = False,
        action: Action | None = None,
        as_of: datetime | None = None,
        replace: bool = False,
        force: bool = False,
    ) -> ImportResult:
        """Import one registry file (see the module docstring) in a single transaction.

        ``changes``: the file is a change list (per-line add/delete indicator; ``action`` is the
        default for lines without one). Otherwise it is a full list: for ``federal`` it replaces
        the store's numbers of every area code it contains; for other lists it adds to them
        (``replace=True`` empties the whole list first, for any list). ``as_of`` is the date of
        the data (default: the file's modification time).
        """
        if list_name not in LISTS:
            raise DNCFileError(f"unknown list {list_name!r} (one of {', '.join(LISTS)})")
        p = Path(path)
        if not p.is_file():
            raise DNCFileError(f"DNC file not found: {p}")
        kind: Literal["full", "changes"] = "changes" if changes else "full"
        fp = fingerprint(p)
        when = as_of or datetime.fromtimestamp(p.stat().st_mtime, UTC)
        result = ImportResult(source=str(p), list_name=list_name, kind=kind, as_of=_iso(when))
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not force and conn.execute(
                    "SELECT 1 FROM imports WHERE fingerprint = ? AND list = ? AND kind = ?",
                    (fp, list_name, kind)).fetchone():
                conn.execute("ROLLBACK")
                result.skipped = True
                return result
            if replace:
                result.replaced += conn.execute("DELETE FROM numbers WHERE list = ?", (list_name,)).rowcount
                conn.execute("DELETE FROM area_codes WHERE list = ?", (list_name,))
            self._load(p, list_name, changes, action, result)
            self._refresh_area_codes(list_name, result, kind, when)
            conn.execute(
                "INSERT INTO imports (list, kind, source, fingerprint, lines, added, deleted, rejected, as_of, "
                "imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (list_name, kind, str(p), fp, result.lines, result.added, result.deleted, result.rejected,
                 result.as_of, _iso(now_utc())))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return result

    def _load(self, path: Path, list_name: ListName, changes: bool, action: Action | None,
              result: ImportResult) -> None:
        conn = self.conn
        replace_codes = list_name == "federal" and not changes
        seen: set[int] = set()
        rejects = _Rejects()
        batch: list[int] = []
        ops: list[tuple[int, Action]] = []

        def flush_full() -> None:
            if batch:
                result.added += conn.executemany(
                    "INSERT OR IGNORE INTO numbers (number, list) VALUES (?, ?)",
                    [(n, list_name) for n in batch]).rowcount
                batch.clear()

        def flush_changes() -> None:
            # keep the file's order: consecutive runs of one action go in one executemany
            i = 0
            while i < len(ops):
                j = i
                act = ops[i][1]
                while j < len(ops) and ops[j][1] == act:
                    j += 1
                params = [(n, list_name) for n, _ in ops[i:j]]
                if act == "add":
                    result.added += conn.executemany(
                        "INSERT OR IGNORE INTO numbers (number, list) VALUES (?, ?)", params).rowcount
                else:
                    result.deleted += conn.executemany(
                        "DELETE FROM numbers WHERE number = ? AND list = ?", params).rowcount
                i = j
            ops.clear()

        try:
            for source, lines in iter_sources(path):
                counted = _Counter(lines)
                for rec in parse_lines(counted, source, changes=changes, default_action=action, rejects=rejects):
                    ac = rec.number // _AC
                    if ac not in seen:
                        seen.add(ac)
                        if replace_codes:
                            result.replaced += conn.execute(
                                "DELETE FROM numbers WHERE number BETWEEN ? AND ? AND list = ?",
                                (ac * _AC, ac * _AC + _AC - 1, list_name)).rowcount
                    if changes:
                        ops.append((rec.number, rec.action))
                        if len(ops) >= CHUNK:
                            flush_changes()
                    else:
                        batch.append(rec.number)
                        if len(batch) >= CHUNK:
                            flush_full()
                result.lines += counted.n
            flush_changes() if changes else flush_full()
        except (OSError, zipfile.BadZipFile, EOFError, gzip.BadGzipFile) as exc:
            raise DNCFileError(f"cannot read DNC file {path}: {exc}") from None
        result.rejected = rejects.count
        result.rejected_examples = rejects.examples
        result.area_codes = sorted(seen)

    def _refresh_area_codes(self, list_name: ListName, result: ImportResult, kind: str, when: datetime) -> None:
        conn = self.conn
        stamp = _iso(when)
        now = _iso(now_utc())
        set_date = _SET_FULL_AS_OF if kind == "full" else _SET_CHANGES_AS_OF
        for ac in result.area_codes:
            count = conn.execute(
                "SELECT COUNT(*) FROM numbers WHERE number BETWEEN ? AND ? AND list = ?",
                (ac * _AC, ac * _AC + _AC - 1, list_name)).fetchone()[0]
            conn.execute(
                "INSERT INTO area_codes (list, area_code, numbers, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (list, area_code) DO UPDATE SET numbers = excluded.numbers, "
                "updated_at = excluded.updated_at", (list_name, ac, count, now))
            conn.execute(set_date, (stamp, Path(result.source).name, list_name, ac))


class _Counter:
    """Counts the lines an iterator yields (without holding them)."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self.n = 0

    def __iter__(self) -> Iterator[str]:
        for line in self._lines:
            self.n += 1
            yield line
