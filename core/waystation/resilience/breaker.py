"""A circuit breaker per station, shared by every lead running in the process.

The state lives in a :class:`BreakerBackend`; the in-process one is here, a Redis one in
:mod:`waystation.resilience.redis_shared` lets workers on several machines share it. Every
transition is reported to ``on_change`` (the engine forwards it to the ``on_breaker_change`` hook).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from waystation.resilience.policies import BreakerPolicy

#: Error categories that count as a vendor failure for the breaker. A client error (the request
#: was wrong, e.g. an invalid number) or a throttle (the vendor is alive) does not.
FAILURE_CATEGORIES = frozenset(
    {"timeout", "connection", "server_error", "transient", "auth", "blocked", "exhausted", "error",
     "invalid_output"}
)


class BreakerState(StrEnum):
    """Where a breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class BreakerSnapshot:
    """The breaker's state as stored: ``cause`` is ``failures`` or ``exhausted`` when open."""

    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    cause: str | None = None
    probes: int = 0


ChangeCallback = Callable[[str, BreakerState, BreakerState, str | None], None]


class BreakerBackend(Protocol):
    """Where breaker state is kept; methods are async so that a Redis backend fits."""

    async def acquire(self, name: str, policy: BreakerPolicy, now: float) -> tuple[bool, BreakerSnapshot,
                                                                                    BreakerSnapshot]:
        """Ask to make a call: (allowed, state before, state after)."""
        ...

    async def record(self, name: str, policy: BreakerPolicy, now: float, ok: bool,
                     cause: str | None) -> tuple[BreakerSnapshot, BreakerSnapshot]:
        """Record a call's result: (state before, state after)."""
        ...

    async def reset(self, name: str) -> None:
        """Close the breaker by hand."""
        ...

    async def snapshot(self, name: str) -> BreakerSnapshot:
        """The current state, for listings."""
        ...


def transition_acquire(snap: BreakerSnapshot, policy: BreakerPolicy, now: float) -> bool:
    """Pure state machine for a call request; mutates ``snap``. Shared by every backend."""
    if snap.state is BreakerState.OPEN:
        wait = policy.reset_after_exhausted if snap.cause == "exhausted" else policy.reset_after
        if now - snap.opened_at < wait:
            return False
        snap.state = BreakerState.HALF_OPEN
        snap.probes = 0
    if snap.state is BreakerState.HALF_OPEN:
        if snap.probes >= policy.half_open_max_calls:
            return False
        snap.probes += 1
    return True


def transition_record(snap: BreakerSnapshot, policy: BreakerPolicy, now: float, ok: bool,
                      cause: str | None) -> None:
    """Pure state machine for a call's result; mutates ``snap``."""
    if ok:
        if snap.state is BreakerState.HALF_OPEN or snap.failures:
            snap.state = BreakerState.CLOSED
            snap.failures = 0
            snap.cause = None
            snap.probes = 0
        return
    snap.failures += 1
    if (
        cause == "exhausted"
        or snap.state is BreakerState.HALF_OPEN
        or snap.failures >= policy.failure_threshold
    ):
        snap.state = BreakerState.OPEN
        snap.opened_at = now
        snap.cause = "exhausted" if cause == "exhausted" else "failures"
        snap.probes = 0


def _copy(s: BreakerSnapshot) -> BreakerSnapshot:
    return BreakerSnapshot(s.state, s.failures, s.opened_at, s.cause, s.probes)


class MemoryBreakerBackend:
    """Breaker state in this process's memory (the default)."""

    def __init__(self) -> None:
        self._states: dict[str, BreakerSnapshot] = {}

    def _get(self, name: str) -> BreakerSnapshot:
        snap = self._states.get(name)
        if snap is None:
            snap = self._states[name] = BreakerSnapshot()
        return snap

    async def acquire(self, name: str, policy: BreakerPolicy, now: float) -> tuple[bool, BreakerSnapshot,
                                                                                    BreakerSnapshot]:
        snap = self._get(name)
        before = _copy(snap)
        allowed = transition_acquire(snap, policy, now)
        return allowed, before, snap

    async def record(self, name: str, policy: BreakerPolicy, now: float, ok: bool,
                     cause: str | None) -> tuple[BreakerSnapshot, BreakerSnapshot]:
        snap = self._get(name)
        before = _copy(snap)
        transition_record(snap, policy, now, ok, cause)
        return before, snap

    async def reset(self, name: str) -> None:
        self._states[name] = BreakerSnapshot()

    async def snapshot(self, name: str) -> BreakerSnapshot:
        return _copy(self._get(name))


class CircuitBreaker:
    """One station's breaker: ``await allow()`` before a call, ``await record(ok, category)`` after."""

    def __init__(
        self,
        name: str,
        policy: BreakerPolicy,
        backend: BreakerBackend | None = None,
        on_change: ChangeCallback | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.policy = policy
        self.backend: BreakerBackend = backend or MemoryBreakerBackend()
        self.on_change = on_change
        self.clock = clock

    def _emit(self, before: BreakerSnapshot, after: BreakerSnapshot) -> None:
        if before.state is not after.state and self.on_change is not None:
            self.on_change(self.name, before.state, after.state, after.cause)

    async def allow(self) -> bool:
        """Whether a call may go out now (in half-open: only the allowed number of probes)."""
        allowed, before, after = await self.backend.acquire(self.name, self.policy, self.clock())
        self._emit(before, after)
        return allowed

    async def record(self, ok: bool, category: str | None = None) -> None:
        """Record a call's result; ``category`` decides whether a failure counts.

        A failure that is not the vendor's fault (a client error: the vendor answered) counts as
        a sign of life, like a success, so a half-open probe slot is never left dangling.
        """
        ok_for_breaker = ok or category not in FAILURE_CATEGORIES
        before, after = await self.backend.record(self.name, self.policy, self.clock(), ok_for_breaker,
                                                  category)
        self._emit(before, after)

    async def reset(self) -> None:
        """Close the breaker by hand (``waystation breaker reset``)."""
        before = await self.backend.snapshot(self.name)
        await self.backend.reset(self.name)
        self._emit(before, BreakerSnapshot())

    async def state(self) -> BreakerSnapshot:
        """The current state."""
        return await self.backend.snapshot(self.name)
