"""The suppression ledger: people who opted out or asked to be forgotten, kept as keyed hashes.

Each entry is the HMAC-SHA256 (keyed with a local secret) of a normalised phone number or e-mail
address, with its kind, a reason (``opt-out``, ``erasure``, ...) and the date of the request. The
ledger holds no readable personal data: without the secret a hash cannot be tested against a
guess, and ``waystation suppress list`` shows hashes only.

Files (both created on first write, the key with mode 0600):

- the ledger, an SQLite file: ``$WAYSTATION_SUPPRESS_LEDGER`` or ``.waystation/suppress.sqlite``;
- the secret: ``$WAYSTATION_SUPPRESS_SECRET`` (hex or text), else the file next to the ledger
  ``<ledger>.key``. Back it up with the ledger: a ledger whose secret is lost matches nothing, and
  is refused (its key check fails) rather than silently letting everyone through.

Normalisation: a phone number is its digits, a 10-digit number taken as North American (``1``
prefixed), so ``(212) 555-0123``, ``+1 212 555 0123`` and ``12125550123`` are one entry; an
e-mail address is trimmed and lower-cased.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from waystation.errors import WaystationError

Kind = Literal["phone", "email"]
LEDGER_ENV = "WAYSTATION_SUPPRESS_LEDGER"
SECRET_ENV = "WAYSTATION_SUPPRESS_SECRET"
DEFAULT_LEDGER = Path(".waystation/suppress.sqlite")
#: The lead fields checked against the ledger.
PHONE_FIELDS = ("phone", "phones")
EMAIL_FIELDS = ("email", "emails")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    added_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class LedgerError(WaystationError):
    """The ledger cannot be read or does not match its secret (fail closed: nothing passes)."""

    category = "suppression"


@dataclass(frozen=True)
class Entry:
    """One suppressed identifier (no readable personal data: ``hash`` only)."""

    hash: str
    kind: Kind
    reason: str
    requested_at: str
    added_at: str

    def as_dict(self) -> dict[str, str]:
        """For ``--json`` output."""
        return {"hash": self.hash, "kind": self.kind, "reason": self.reason, "requested_at": self.requested_at,
                "added_at": self.added_at}


def ledger_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``path``, else ``$WAYSTATION_SUPPRESS_LEDGER``, else ``.waystation/suppress.sqlite``."""
    return Path(path or os.environ.get(LEDGER_ENV) or DEFAULT_LEDGER)


def normalize_phone(value: Any) -> str | None:
    """A phone number as digits with its country code (a bare 10-digit number is North American)."""
    digits = "".join(ch for ch in str(value or "") if ch.isdigit())
    if len(digits) == 10:
        digits = "1" + digits
    return digits if 8 <= len(digits) <= 15 else None


def normalize_email(value: Any) -> str | None:
    """An e-mail address trimmed and lower-cased, or ``None`` when it is not one."""
    text = str(value or "").strip().lower()
    return text if "@" in text and "." in text.rsplit("@", 1)[-1] and " " not in text else None


def kind_of(value: str) -> Kind:
    """``email`` when the value has an ``@``, else ``phone``."""
    return "email" if "@" in value else "phone"


def normalize(value: Any, kind: Kind) -> str | None:
    """``value`` normalised as ``kind``, or ``None`` when it is not one."""
    return normalize_email(value) if kind == "email" else normalize_phone(value)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _date(value: str | datetime | None) -> str:
    if value is None:
        return _now()
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).strip())
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.isoformat(timespec="seconds")


def _load_secret(path: Path, create: bool) -> bytes | None:
    raw = os.environ.get(SECRET_ENV)
    if raw:
        try:
            return bytes.fromhex(raw)
        except ValueError:
            return raw.encode()
    key_file = path.with_name(path.name + ".key")
    if key_file.exists():
        return bytes.fromhex(key_file.read_text().strip())
    if not create:
        return None
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
    return key


class SuppressionLedger:
    """The ledger file and its secret. ``create=False`` opens an existing ledger read-only in
    spirit (nothing is created); use it as a context manager or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, create: bool = True) -> None:
        self.path = ledger_path(path)
        if not create and not self.path.exists():
            raise LedgerError(f"no suppression ledger at {self.path}")
        secret = _load_secret(self.path, create)
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the suppression ledger {self.path}: {exc}") from None
        self._secret = secret
        self._check_key()

    def _check_key(self) -> None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
        if self._secret is None:
            if row is not None or self.count():
                raise LedgerError(f"the suppression ledger {self.path} has entries but its secret is missing "
                                  f"(set {SECRET_ENV} or restore {self.path.name}.key)")
            return
        check = hmac.new(self._secret, b"waystation-suppress-key-check", hashlib.sha256).hexdigest()
        if row is None:
            self.conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('key_check', ?)", (check,))
        elif not hmac.compare_digest(row[0], check):
            raise LedgerError(f"the secret does not match the suppression ledger {self.path} (wrong "
                              f"{SECRET_ENV} or {self.path.name}.key)")

    def close(self) -> None:
        """Close the file."""
        self.conn.close()

    def __enter__(self) -> SuppressionLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- hashing ------------------------------------------------------------------------------

    def digest(self, value: Any, kind: Kind | None = None) -> str | None:
        """The keyed hash of ``value`` (``None`` when it is not a phone number / e-mail address)."""
        if self._secret is None:
            raise LedgerError(f"the suppression ledger {self.path} has no secret")
        k = kind or kind_of(str(value))
        norm = normalize(value, k)
        if norm is None:
            return None
        return hmac.new(self._secret, f"{k}:{norm}".encode(), hashlib.sha256).hexdigest()

    # -- writing ------------------------------------------------------------------------------

    def add(self, value: Any, *, kind: Kind | None = None, reason: str = "opt-out",
            requested_at: str | datetime | None = None) -> Entry | None:
        """Suppress ``value``; returns its entry (``None`` when it is not a phone / e-mail).
        Adding it again keeps the earliest request date."""
        k = kind or kind_of(str(value))
        h = self.digest(value, k)
        if h is None:
            return None
        when, now = _date(requested_at), _now()
        self.conn.execute(
            "INSERT INTO entries (hash, kind, reason, requested_at, added_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (hash) DO UPDATE SET requested_at = MIN(requested_at, excluded.requested_at)",
            (h, k, reason, when, now))
        return self.get(h)

    def remove(self, value_or_hash: str) -> bool:
        """Remove an entry by value or by hash; whether there was one."""
        text = value_or_hash.strip()
        h = text.lower() if _is_hash(text) else self.digest(text)
        if h is None:
            return False
        return self.conn.execute("DELETE FROM entries WHERE hash = ?", (h,)).rowcount > 0

    # -- reading ------------------------------------------------------------------------------

    def get(self, h: str) -> Entry | None:
        """The entry of hash ``h``."""
        row = self.conn.execute("SELECT hash, kind, reason, requested_at, added_at FROM entries WHERE hash = ?",
                                (h,)).fetchone()
        return Entry(*row) if row else None

    def lookup(self, value: Any, kind: Kind | None = None) -> Entry | None:
        """The entry that suppresses ``value``, if any."""
        h = self.digest(value, kind)
        return self.get(h) if h is not None else None

    def match(self, data: Mapping[str, Any]) -> Entry | None:
        """The first entry that suppresses a phone or e-mail of the lead ``data`` (``phone``,
        ``phones``, ``email``, ``emails``; list fields are checked item by item)."""
        for fields, kind in ((PHONE_FIELDS, "phone"), (EMAIL_FIELDS, "email")):
            for f in fields:
                for value in values_of(data.get(f)):
                    entry = self.lookup(value, kind)  # type: ignore[arg-type]
                    if entry is not None:
                        return entry
        return None

    def entries(self) -> Iterator[Entry]:
        """Every entry, oldest request first."""
        cur = self.conn.execute("SELECT hash, kind, reason, requested_at, added_at FROM entries "
                                "ORDER BY requested_at, hash")
        for row in cur:
            yield Entry(*row)

    def count(self) -> int:
        """How many entries the ledger holds."""
        return int(self.conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])


def _is_hash(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text)


def values_of(value: Any) -> Iterable[Any]:
    """The single values in a lead field (a value, a list, or a list of records with a number)."""
    if value is None or value == "":
        return ()
    if isinstance(value, list | tuple):
        out: list[Any] = []
        for v in value:
            if isinstance(v, Mapping):  # e.g. [{"number": ...}] from a skip-trace
                out.extend(x for k, x in v.items() if k in ("number", "phone", "email", "address", "value"))
            else:
                out.append(v)
        return out
    return (value,)
