"""Per-station rate limits (calls per second, concurrent calls), shared by every lead.

Built on aiolimiter as ``AsyncLimiter(1, 1/rate)`` so that it paces calls instead of letting a
full second's worth burst out at start (aiolimiter #200).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from aiolimiter import AsyncLimiter

from waystation.resilience.policies import RateLimit


class RateBackend(Protocol):
    """Something that waits until one more call may go out (in-process or Redis)."""

    async def acquire(self) -> None:
        """Wait for a slot."""
        ...


class StationLimiter:
    """The rate limit and concurrency cap of one station."""

    def __init__(self, name: str, policy: RateLimit, backend: RateBackend | None = None) -> None:
        self.name = name
        self.policy = policy
        self._rate: RateBackend | AsyncLimiter | None = backend
        if self._rate is None and policy.per_second:
            self._rate = AsyncLimiter(1, 1.0 / policy.per_second)
        self._sem = asyncio.Semaphore(policy.concurrent) if policy.concurrent else None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a concurrency slot and wait for the rate limit for one call."""
        if self._sem is not None:
            await self._sem.acquire()
        try:
            if self._rate is not None:
                await self._rate.acquire()
            yield
        finally:
            if self._sem is not None:
                self._sem.release()
