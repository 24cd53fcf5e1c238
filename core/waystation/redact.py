"""Keeping secrets out of texts: error messages, and every log record of the process.

Each :class:`~waystation.station.StationSettings` registers the values of its secret fields here
when it is created. From the first registration on, a log-record factory masks those values as
``***`` in every record's message and arguments, whichever library logs them (an HTTP client
logging a URL with a key in its query, a driver logging a connection string).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()  # replaced whole under the lock, read without it
_installed = False

#: Secret values shorter than this are not masked in logs (they would mask ordinary words).
MIN_LENGTH = 6


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every value of ``secrets`` replaced by ``***``."""
    for s in secrets:
        if s and s in text:
            text = text.replace(s, "***")
    return text


def _mask(value: Any, secrets: frozenset[str]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, int | float | bool) or value is None:
        return value
    text = str(value)
    masked = redact(text, secrets)
    return masked if masked != text else value


def _install() -> None:
    global _installed
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        secrets = _secrets
        if secrets:
            if isinstance(record.msg, str):
                record.msg = redact(record.msg, secrets)
            if isinstance(record.args, tuple):
                record.args = tuple(_mask(a, secrets) for a in record.args)
            elif isinstance(record.args, dict):
                record.args = {k: _mask(v, secrets) for k, v in record.args.items()}
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def protect(secrets: Iterable[str]) -> None:
    """Mask these values in every log record from now on (values shorter than ``MIN_LENGTH`` are
    ignored)."""
    new = {s for s in secrets if s and len(s) >= MIN_LENGTH}
    if not new:
        return
    global _secrets
    with _lock:
        _secrets = _secrets | new
        if not _installed:
            _install()
