"""Logging set up from the root options: ``-v/-q``, ``--log-level``, ``--log-format``, ``--log-file``.

Default level ``WARNING`` (retries, breaker changes and hook errors are warnings); each ``-v``
lowers it one step (``INFO``, then ``DEBUG``), each ``-q`` raises it (``ERROR``, then ``CRITICAL``);
``--log-level`` sets it outright (also ``WAYSTATION_LOG_LEVEL``). Records go to stderr, or to
``--log-file`` (appended). ``--log-format json`` writes one JSON object a line with ``time``,
``level``, ``logger``, ``message`` and every structured field a record carries — records logged
while a step runs carry ``station``, ``step``, ``lead_id`` and ``attempt`` (:mod:`waystation.logctx`),
and the engine's retry, breaker and hook-error records add ``category``, so a log pipeline can
group them without parsing text.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from waystation.logctx import ContextFilter

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime"}
#: Structured fields shown (in this order) at the end of a text line.
TEXT_FIELDS = ("station", "step", "lead_id", "attempt", "category")
_HANDLER_NAME = "waystation.cli"


def level_for(verbose: int, quiet: int, level: str | None) -> int:
    """The level ``-v``/``-q`` counts or an explicit ``--log-level`` ask for."""
    if level:
        return logging.getLevelName(level.upper())  # type: ignore[no-any-return]
    index = LEVELS.index("WARNING") - verbose + quiet
    return logging.getLevelName(LEVELS[max(0, min(len(LEVELS) - 1, index))])  # type: ignore[no-any-return]


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of a record."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (ISO 8601 UTC), level, logger, message, extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in extra_fields(record).items():
            out.setdefault(k, v)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message [station=… lead_id=… attempt=… category=…]``."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = extra_fields(record)
        tags = [f"{k}={extra[k]}" for k in TEXT_FIELDS if extra.get(k) not in (None, "")]
        return f"{line} [{' '.join(tags)}]" if tags else line


def setup(*, verbose: int = 0, quiet: int = 0, level: str | None = None, fmt: str = "text",
          file: Path | None = None) -> int:
    """Configure the root logger for one ``waystation`` invocation; returns the level."""
    lvl = level_for(verbose, quiet, level)
    root = logging.getLogger()
    for h in list(root.handlers):
        if h.get_name() == _HANDLER_NAME:
            root.removeHandler(h)
            h.close()
    handler: logging.Handler
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(lvl)
    return lvl
