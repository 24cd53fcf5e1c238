"""Per-station rate limits (calls per second, concurrent calls), shared by every lead.

Built on aiolimiter as ``AsyncLimiter(1, 1/rate)`` so that it paces calls instead of letting a
full second's worth burst out at start (aiolimiter #200). With ``shared: redis`` the pace is kept
in Redis instead (:class:`waystation.resilience.redis_shared.RedisRateLimiter`), so that every
worker together stays under the limit, and the concurrency cap is a Redis semaphore as well
(:class:`~waystation.resilience.redis_shared.RedisConcurrency`) on top of the per-process one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from aiolimiter import AsyncLimiter

from waystation.resilience.policies import RateLimit


class RateBackend(Protocol):
    """Something that waits until one more call may go out (in-process or Redis)."""

    async def acquire(self) -> None:
        """Wait for a slot."""
        ...


class SharedSlots(Protocol):
    """A concurrency cap shared beyond this process (Redis)."""

    def slot(self) -> AbstractAsyncContextManager[None]:
        """Hold one slot while a call runs."""
        ...


class StationLimiter:
    """The rate limit and concurrency cap of one station.

    The aiolimiter bucket and the semaphore belong to one event loop; they are made on first use
    and made again when the engine is used from another loop (``asyncio.run`` twice).
    """

    def __init__(self, name: str, policy: RateLimit, backend: RateBackend | None = None,
                 shared_slots: SharedSlots | None = None) -> None:
        self.name = name
        self.policy = policy
        self.backend = backend
        self.shared_slots = shared_slots
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rate: RateBackend | AsyncLimiter | None = None
        self._sem: asyncio.Semaphore | None = None

    def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        self._loop = loop
        self._rate = self.backend
        if self._rate is None and self.policy.per_second:
            self._rate = AsyncLimiter(1, 1.0 / self.policy.per_second)
        self._sem = asyncio.Semaphore(self.policy.concurrent) if self.policy.concurrent else None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a concurrency slot (this process's, then the shared one) and wait for the rate
        limit for one call."""
        self._bind()
        sem, rate = self._sem, self._rate
        if sem is not None:
            await sem.acquire()
        try:
            if self.shared_slots is not None:
                async with self.shared_slots.slot():
                    if rate is not None:
                        await rate.acquire()
                    yield
            else:
                if rate is not None:
                    await rate.acquire()
                yield
        finally:
            if sem is not None:
                sem.release()
