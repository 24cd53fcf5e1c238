"""Run history: every run's per-step figures, kept so that costs can be compared and forecast.

What is kept, per run (:class:`RunHistory`): the route, the input's name and size, when it ran,
lead counts by status, the total cost, and per step (:class:`StepHistory`): runs (vendor calls),
succeeded / failed, hits, hits per provided field and per *pattern* of provided fields (which
fields came back together, for the forecast), reasoned misses, errors by category, skips by
reason, latency percentiles (from a mergeable histogram), cost, cache hits. No lead data is kept:
only counts, so the history holds no personal data.

Where: a :class:`HistoryStore`, picked by URL with :func:`open_history`:

``sqlite:///path/file.db``
    The default: the checkpoint database file (tables ``run_history``, ``run_estimates``).
``postgresql+psycopg://user@host/db?schema=NAME``
    PostgreSQL through SQLAlchemy 2 (``pip install 'waystation[postgres]'``), for a team whose
    workers and laptops share one history. ``schema`` is optional.

A run may be written in *segments*: each process (a batch run, each worker) writes its own
cumulative figures under ``(run_id, segment)``, replacing its previous write, so several workers
recording the same queue run never race; reading a run merges its segments. Record a run from
your own code with :class:`~waystation.history.collector.HistoryRecorder` (see its docstring).
"""

from __future__ import annotations

import os
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from waystation.history.model import RunHistory, StepHistory, merge_runs

__all__ = [
    "HISTORY_URL_ENV",
    "HistoryStore",
    "RunHistory",
    "StepHistory",
    "default_history_url",
    "merge_runs",
    "open_history",
]

#: Environment variable naming the history store (else the checkpoint SQLite file).
HISTORY_URL_ENV = "WAYSTATION_HISTORY"


@runtime_checkable
class HistoryStore(Protocol):
    """Where run histories and estimates are kept. Both implementations pass
    ``tests/core/test_history.py``."""

    url: str

    async def record(self, run: RunHistory) -> None:
        """Save (replace) one segment of a run: ``(run.run_id, run.segment)``."""
        ...

    async def runs(self, *, route: str | None = None, limit: int | None = None) -> list[RunHistory]:
        """Runs (segments merged), newest first; only ``route``'s with ``route``."""
        ...

    async def run(self, run_id: str) -> RunHistory | None:
        """One run (segments merged), or ``None``."""
        ...

    async def delete(self, run_id: str) -> int:
        """Forget a run's history; returns the segments deleted."""
        ...

    async def save_estimate(self, route: str, input_key: str, estimate: dict[str, Any], at: float) -> None:
        """Keep a forecast made for ``route`` on the input identified by ``input_key``."""
        ...

    async def estimate_for(self, route: str, input_key: str, before: float | None = None) -> dict[str, Any] | None:
        """The latest forecast for ``route`` on ``input_key`` (made before ``before``), or ``None``."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def default_history_url(checkpoint_url: str | None = None) -> str | None:
    """``WAYSTATION_HISTORY`` if set; else the checkpoint URL when it is SQLite; ``None`` (keep no
    history) for an in-process ``memory://`` checkpoint store; else the default SQLite checkpoint
    file."""
    from waystation.stores import DEFAULT_SQLITE_URL

    env = os.environ.get(HISTORY_URL_ENV)
    if env:
        return env
    scheme = urlsplit(checkpoint_url).scheme.lower() if checkpoint_url else ""
    if scheme == "sqlite":
        return checkpoint_url
    if scheme == "memory":
        return None
    return DEFAULT_SQLITE_URL


def open_history(url: str) -> HistoryStore:
    """Open the history store a URL names (see the module docstring)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        from waystation.history.sqlite import SQLiteHistory

        return SQLiteHistory(url)
    if scheme.startswith("postgres"):
        from waystation.history.sql import SQLHistory

        return SQLHistory(url)
    from waystation.stores import redact_url

    raise ValueError(f"unknown history URL {redact_url(url)!r}: use sqlite:///path or "
                     "postgresql+psycopg://user@host/db")
