"""Which station, step, lead and attempt a log record belongs to, without passing them around.

The engine binds them while a step runs (:func:`bind`, a context variable, so concurrent leads
never see each other's); :class:`ContextFilter` copies them onto every record logged meanwhile —
the engine's retry, breaker and hook-error lines, and a station's own ``ctx.log`` lines — as the
record attributes ``station``, ``step``, ``lead_id`` and ``attempt`` (a record that sets one itself
through ``extra=`` keeps its own). The ``waystation`` command installs the filter on its log
handler (``--log-format json`` then writes them as fields).
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

FIELDS = ("station", "step", "lead_id", "attempt")

_current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("waystation_log", default=None)


def bind(**fields: Any) -> contextvars.Token[dict[str, Any] | None]:
    """Add ``fields`` to the current context (on top of what is bound); returns the token for
    :func:`reset`."""
    base = _current.get() or {}
    return _current.set({**base, **fields})


def reset(token: contextvars.Token[dict[str, Any] | None]) -> None:
    """Undo a :func:`bind`."""
    _current.reset(token)


def current() -> dict[str, Any]:
    """The fields bound now (a copy)."""
    return dict(_current.get() or {})


class ContextFilter(logging.Filter):
    """Copies the bound fields onto each record that does not set them itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _current.get()
        if bound:
            for key, value in bound.items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        return True
