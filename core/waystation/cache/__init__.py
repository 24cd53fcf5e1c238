"""The paid-lookup cache: a vendor's answer for the same question is not bought twice.

A route step opts in with ``cache: {ttl: 30d}`` (or a station declares a default TTL with
``cache_ttl``); the engine then looks the step's key up between "fallback still needed?" and
"reserve budget". A fresh entry answers the step: no vendor call, no cost, provenance marked
``cache`` with the entry's age, counted as a cache hit in the report. Otherwise the step calls the
vendor and a *successful* answer is stored: a hit always, a reasoned miss ("no phone found") only
when the station declares ``cache_misses = True``. A failure — timeout, 5xx, 429, a block, a
raising station — is never stored, so the next run asks again. See :mod:`waystation.cache.keys`
for what a key is made of and ``docs/cost.md`` for TTLs and modes.

Two implementations of one :class:`LookupCache` protocol, picked by URL with :func:`open_cache`
(the same URLs as checkpoint stores; both pass ``tests/core/test_cache.py``):

``sqlite:///path/file.db``
    The default: the checkpoint database file, table ``lookup_cache``.
``redis://host:port/db?prefix=waystation``
    Shared by workers on several machines. Keys ``<prefix>:cache:...``; Redis expires entries at
    their TTL by itself.

Entry times come from the cache's ``clock`` (``time.time`` unless a test passes another), and
an entry is stale once ``clock() >= expires_at``, whatever the backend.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

from waystation.cache.entry import CacheEntry, CacheStats, Clock

CacheMode = Literal["off", "read", "read-write"]
CACHE_MODES: tuple[CacheMode, ...] = ("off", "read", "read-write")

__all__ = [
    "CACHE_MODES",
    "CACHE_URL_ENV",
    "CacheEntry",
    "CacheMode",
    "CacheStats",
    "LookupCache",
    "default_cache_url",
    "open_cache",
    "parse_ttl",
]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_TTL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)


def parse_ttl(value: str | float | int) -> float:
    """Seconds of a TTL: a number of seconds, or text like ``90s``, ``15m``, ``12h``, ``30d``, ``2w``.

    Raises ``ValueError`` for anything else or for a TTL that is not positive."""
    if isinstance(value, bool):
        raise ValueError(f"invalid TTL {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _TTL.match(value)
        if m is None:
            raise ValueError(f"invalid TTL {value!r}: use seconds or e.g. 90s, 15m, 12h, 30d, 2w")
        seconds = float(m.group(1)) * _UNITS[(m.group(2) or "s").lower()]
    if seconds <= 0:
        raise ValueError(f"invalid TTL {value!r}: it must be positive")
    return seconds


@runtime_checkable
class LookupCache(Protocol):
    """Where cached answers live. Every implementation passes ``tests/core/test_cache.py``."""

    url: str
    clock: Clock

    async def get(self, station: str, key: str) -> CacheEntry | None:
        """The fresh entry of ``key``, or ``None`` (missing or expired); counts a hit or a miss."""
        ...

    async def put(self, key: str, entry: CacheEntry) -> None:
        """Store (replace) an entry; returns when it is written."""
        ...

    async def stats(self, station: str | None = None) -> list[CacheStats]:
        """Figures per station (one station with ``station``), sorted by station name."""
        ...

    async def prune(self, station: str | None = None) -> int:
        """Delete expired entries; returns how many."""
        ...

    async def clear(self, station: str | None = None) -> int:
        """Delete every entry (of ``station``); returns how many."""
        ...

    async def forget(self, subjects: Iterable[str], *, dry_run: bool = False) -> int:
        """Delete every entry holding any of these subject tokens (:func:`~waystation.cache.keys.
        subject_token`); returns how many (with ``dry_run``: how many it would)."""
        ...

    async def used(self) -> bool:
        """Whether this cache was ever written (without creating anything when it was not)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


#: Environment variable naming the lookup cache (else the checkpoint store's URL).
CACHE_URL_ENV = "WAYSTATION_CACHE"


def default_cache_url(checkpoint_url: str | None = None) -> str:
    """``WAYSTATION_CACHE`` if set; else the checkpoint URL when it is SQLite or Redis (the cache
    then lives beside the checkpoints); else the default SQLite checkpoint file."""
    import os

    from waystation.stores import DEFAULT_SQLITE_URL

    env = os.environ.get(CACHE_URL_ENV)
    if env:
        return env
    if checkpoint_url and urlsplit(checkpoint_url).scheme.lower() in ("sqlite", "redis", "rediss", "unix"):
        return checkpoint_url
    return DEFAULT_SQLITE_URL


def open_cache(url: str, *, clock: Clock = time.time) -> LookupCache:
    """Open the cache a URL names: ``sqlite:///path`` or ``redis://host:port/db?prefix=``."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        from waystation.cache.sqlite import SQLiteCache

        return SQLiteCache(url, clock=clock)
    if scheme in ("redis", "rediss", "unix"):
        from waystation.cache.redis import RedisCache

        return RedisCache(url, clock=clock)
    from waystation.stores import redact_url

    raise ValueError(f"unknown cache URL {redact_url(url)!r}: use sqlite:///path or redis://host:port/db")
