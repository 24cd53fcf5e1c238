"""A cached answer and a station's cache figures: what every cache backend stores and counts.

The backends (:mod:`.sqlite`, :mod:`.redis`) import these from here, never from the
``waystation.cache`` package, which picks a backend lazily in ``open_cache`` (no import cycle).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

__all__ = ["CacheEntry", "CacheStats", "Clock"]

Clock = Callable[[], float]


@dataclass(frozen=True)
class CacheEntry:
    """One stored answer: what the station returned (``fields``, ``misses``, ``stop``, ``reason``,
    ``clear``), when (``stored_at``), until when it is fresh (``expires_at``), and the hashed
    ``subjects`` (personal values) it holds, for ``forget``."""

    station: str
    fields: dict[str, Any]
    stored_at: float
    expires_at: float
    misses: dict[str, str] = field(default_factory=dict)
    stop: str = "continue"
    reason: str | None = None
    clear: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()

    def age(self, now: float) -> float:
        """Seconds since the entry was stored."""
        return max(0.0, now - self.stored_at)

    def to_json(self) -> dict[str, Any]:
        """The stored form (without ``station`` and ``subjects``, which are kept beside it)."""
        return {"fields": self.fields, "stored_at": self.stored_at, "expires_at": self.expires_at,
                "misses": self.misses, "stop": self.stop, "reason": self.reason, "clear": list(self.clear)}

    @classmethod
    def from_json(cls, station: str, data: dict[str, Any]) -> CacheEntry:
        """Rebuild an entry from :meth:`to_json` output."""
        return cls(station=station, fields=dict(data.get("fields") or {}), stored_at=float(data["stored_at"]),
                   expires_at=float(data["expires_at"]), misses=dict(data.get("misses") or {}),
                   stop=str(data.get("stop") or "continue"), reason=data.get("reason"),
                   clear=tuple(data.get("clear") or ()))


class CacheStats(BaseModel):
    """One station's cache figures: fresh and expired entries, lookups that hit or missed, writes,
    and the age in seconds of its oldest and newest fresh entry."""

    station: str
    entries: int = 0
    expired: int = 0
    hits: int = 0
    misses: int = 0
    writes: int = 0
    oldest_age: float | None = None
    newest_age: float | None = None
