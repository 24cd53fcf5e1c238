"""Shared throttling: when a vendor says "wait", every call to that station waits — once.

A vendor that answers 429 with a wait (``Retry-After`` or its reset header, see
:func:`waystation.resilience.policies.retry_after_from_headers`) is telling the *account* to slow
down, not one lead. So the engine keeps one :class:`Throttle` per station: the first 429 with a
wait pauses the station until the wait is over, and every call of every lead in flight waits for
that pause before it goes out, instead of each lead spending its own attempts on 429s.

- In one process the pause is a deadline on the monotonic clock.
- With Redis (the step's ``rate_limit`` or ``breaker`` is ``shared: redis``, or the engine was
  given a ``redis_url``), the pause is also a key ``<prefix>:throttle:<station>`` whose TTL is the
  remaining wait (Redis's own clock, so workers' clocks need not agree): every worker reads it
  before a call, and a longer pause is never shortened by a shorter one.
- A wait longer than the step's retry policy allows (``retry.max_delay``), or a 429 on the last
  attempt, does not burn attempts: the engine ends the step as *deferred* and the lead ends with
  status ``deferred`` (resumable; see :mod:`waystation.deferral`).

Waits are real sleeps, except under ``stamina``'s test mode (``waystation.testing`` switches it on
for every test): there they are skipped like retry waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Protocol

import stamina

if TYPE_CHECKING:
    from waystation.resilience.redis_shared import SharedRedis

log = logging.getLogger("waystation.resilience.throttle")

#: The longest single pause a vendor can impose (a bogus reset header is capped to this).
MAX_PAUSE = 24 * 3600.0
#: What is left of a pause below this is not waited for (timer resolution).
_TOLERANCE = 0.005


class ThrottleBackend(Protocol):
    """Where a pause is shared beyond this process (Redis)."""

    async def pause(self, seconds: float) -> None:
        """Make every caller wait ``seconds`` from now (never shortening a longer pause)."""
        ...

    async def remaining(self) -> float:
        """Seconds left of the current pause (0 when none)."""
        ...


class Throttle:
    """The pause of one station, shared by every lead in the process (and, with a backend, by
    every worker)."""

    def __init__(self, name: str, backend: ThrottleBackend | None = None) -> None:
        self.name = name
        self.backend = backend
        self._until = 0.0  # time.monotonic() deadline
        #: Every pause taken: (monotonic start, seconds); for reports and tests.
        self.pauses: list[tuple[float, float]] = []

    def remaining_local(self) -> float:
        """Seconds left of this process's pause."""
        return max(0.0, self._until - time.monotonic())

    async def pause(self, seconds: float) -> None:
        """Pause the station for ``seconds`` from now (a longer pause already set is kept)."""
        seconds = min(max(0.0, seconds), MAX_PAUSE)
        if seconds <= 0:
            return
        now = time.monotonic()
        if now + seconds > self._until:
            self._until = now + seconds
            self.pauses.append((now, seconds))
            log.warning("%s: the vendor asked to wait %.1f s; every call of this station waits", self.name,
                        seconds)
        if self.backend is not None:
            try:
                await self.backend.pause(seconds)
            except Exception as exc:  # Redis away: this process pauses alone (like the rate limiter)
                log.warning("%s: could not share the pause through Redis (%s: %s)", self.name,
                            type(exc).__name__, exc)

    async def remaining(self) -> float:
        """Seconds left of the pause (this process's, or the shared one if longer)."""
        local = self.remaining_local()
        if self.backend is None:
            return local
        try:
            shared = await self.backend.remaining()
        except Exception as exc:  # Redis away: only this process's pause applies (like the rate limiter)
            log.warning("%s: could not read the shared pause from Redis (%s: %s)", self.name,
                        type(exc).__name__, exc)
            return local
        return max(local, shared)

    async def wait(self, local_only: bool = False) -> float:
        """Wait until the station is not paused; the seconds waited (0 in stamina's test mode).

        ``local_only``: look at this process's pause only (no Redis round trip), for the check made
        right before a call, after its rate-limit slot, so that the call goes out on time.
        """
        waited = 0.0
        while True:
            left = self.remaining_local() if local_only else await self.remaining()
            if left <= _TOLERANCE or stamina.is_testing():
                return waited
            await asyncio.sleep(left)
            waited += left


_PAUSE_LUA = """
local left = redis.call('PTTL', KEYS[1])
local want = tonumber(ARGV[1])
if left < want then
  redis.call('SET', KEYS[1], '1', 'PX', want)
  return want
end
return left
"""


class RedisThrottle:
    """A station's pause in Redis: a key whose TTL is the remaining wait.

    If Redis cannot be reached the pause fails open to this process's own (the calls go on, paced
    by the local pause only) and says so in one warning per ``warn_every`` seconds; the Redis URL's
    password is never logged.
    """

    warn_every = 30.0

    def __init__(self, shared: SharedRedis, name: str) -> None:
        self.shared = shared
        self.name = name
        self.key = shared.key("throttle", name)
        self._warned_at = float("-inf")

    def _degraded(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= self.warn_every:
            self._warned_at = now
            log.warning("throttle of %s: Redis failed (%s); pausing this process alone", self.name,
                        type(exc).__name__)

    async def pause(self, seconds: float) -> None:
        """Set the pause unless a longer one is already set (atomically, one Lua script)."""
        ms = max(1, int(seconds * 1000))
        try:
            script = self.shared.script("throttle_pause", _PAUSE_LUA)
            await script(keys=[self.key], args=[ms])
        except Exception as exc:
            self._degraded(exc)

    async def remaining(self) -> float:
        """Seconds left of the pause, by Redis's clock (0 when Redis cannot be reached)."""
        try:
            ms = await self.shared.client().pttl(self.key)
        except Exception as exc:
            self._degraded(exc)
            return 0.0
        return max(0.0, int(ms) / 1000.0) if ms is not None and int(ms) > 0 else 0.0
