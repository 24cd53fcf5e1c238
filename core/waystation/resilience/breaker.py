"""A circuit breaker per station, shared by every lead running in the process.

The state lives in a :class:`BreakerBackend`; the in-process one is here, a Redis one in
:mod:`waystation.resilience.redis_shared` lets workers on several machines share it. Every
transition is reported to ``on_change`` (the engine forwards it to the ``on_breaker_change`` hook).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from waystation.resilience.policies import BreakerPolicy

log = logging.getLogger("waystation.breaker")

#: Error categories that count as a vendor failure for the breaker. A client error (the request
#: was wrong, e.g. an invalid number) or a throttle (the vendor is alive) does not.
FAILURE_CATEGORIES = frozenset(
    {"timeout", "connection", "server_error", "transient", "auth", "blocked", "exhausted", "error",
     "invalid_output"}
)


#: Failures that open the breaker at once, whatever the threshold: the vendor refused the
#: credentials (401/403, ``AuthError``), blocked the client (``BlockedError``), or the account is out
#: of quota (``QuotaExhaustedError``, cause ``exhausted``: open for ``reset_after_exhausted``).
TRIP_AT_ONCE = frozenset({"auth", "blocked", "exhausted"})


class BreakerState(StrEnum):
    """Where a breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class BreakerSnapshot:
    """The breaker's state as stored: when open, ``cause`` is ``failures`` (the threshold of
    consecutive failures was reached), or ``auth``/``blocked``/``exhausted`` (opened at once)."""

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

    async def record(self, name: str, policy: BreakerPolicy, now: float, ok: bool | None,
                     cause: str | None) -> tuple[BreakerSnapshot, BreakerSnapshot]:
        """Record a call's result (``ok=None``: release a probe slot): (state before, after)."""
        ...

    async def reset(self, name: str) -> None:
        """Close the breaker by hand."""
        ...

    async def snapshot(self, name: str) -> BreakerSnapshot:
        """The current state, for listings."""
        ...


def transition_acquire(snap: BreakerSnapshot, policy: BreakerPolicy, now: float) -> bool:
    """Pure state machine for a call request; mutates ``snap``. Shared by every backend (the Redis
    backend runs the same rules in Lua).

    Open: refused until ``reset_after`` (``reset_after_exhausted`` for cause ``exhausted``) has
    passed since it opened, then half-open. Half-open: at most ``half_open_max_calls`` probes go
    out; a probe that has not reported within ``reset_after`` (cancelled, or its worker died)
    frees its slot, so a lost probe never wedges the breaker.
    """
    if snap.state is BreakerState.OPEN:
        wait = policy.reset_after_exhausted if snap.cause == "exhausted" else policy.reset_after
        if now - snap.opened_at < wait:
            return False
        snap.state = BreakerState.HALF_OPEN
        snap.probes = 0
        snap.opened_at = now
    if snap.state is BreakerState.HALF_OPEN:
        if snap.probes >= policy.half_open_max_calls:
            if now - snap.opened_at < policy.reset_after:
                return False
            snap.probes = 0
            snap.opened_at = now
        snap.probes += 1
    return True


def transition_record(snap: BreakerSnapshot, policy: BreakerPolicy, now: float, ok: bool | None,
                      cause: str | None) -> None:
    """Pure state machine for a call's result; mutates ``snap``.

    ``ok=None`` releases a half-open probe slot without a verdict (the call was cancelled). While
    open, late results of calls that went out before it opened change nothing, except that a
    quota answer turns the cause into ``exhausted``.
    """
    if ok is None:
        if snap.state is BreakerState.HALF_OPEN and snap.probes > 0:
            snap.probes -= 1
        return
    if snap.state is BreakerState.OPEN:
        if not ok and cause == "exhausted" and snap.cause != "exhausted":
            snap.cause = "exhausted"
            snap.opened_at = now
        return
    if ok:
        if snap.state is BreakerState.HALF_OPEN or snap.failures:
            snap.state = BreakerState.CLOSED
            snap.failures = 0
            snap.cause = None
            snap.probes = 0
        return
    snap.failures += 1
    at_once = cause in TRIP_AT_ONCE
    if at_once or snap.state is BreakerState.HALF_OPEN or snap.failures >= policy.failure_threshold:
        snap.state = BreakerState.OPEN
        snap.opened_at = now
        snap.cause = cause if at_once else "failures"
        snap.probes = 0


def open_until(snap: BreakerSnapshot, policy: BreakerPolicy) -> float | None:
    """When an open breaker lets a probe through (epoch seconds), else ``None``."""
    if snap.state is not BreakerState.OPEN:
        return None
    wait = policy.reset_after_exhausted if snap.cause == "exhausted" else policy.reset_after
    return snap.opened_at + wait


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
        return allowed, before, _copy(snap)

    async def record(self, name: str, policy: BreakerPolicy, now: float, ok: bool | None,
                     cause: str | None) -> tuple[BreakerSnapshot, BreakerSnapshot]:
        snap = self._get(name)
        before = _copy(snap)
        transition_record(snap, policy, now, ok, cause)
        return before, _copy(snap)

    async def reset(self, name: str) -> None:
        self._states[name] = BreakerSnapshot()

    async def snapshot(self, name: str) -> BreakerSnapshot:
        return _copy(self._get(name))


class CircuitBreaker:
    """One station's breaker: ``await allow()`` before a call, ``await record(ok, category)`` after.

    When the backend itself fails (Redis unreachable) the breaker *fails open*: calls are allowed
    and results go unrecorded, with a warning every ``warn_every`` seconds at most — losing the
    shared breaker must not stop the leads. The state it last saw is kept in ``degraded``.
    """

    warn_every = 30.0

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
        self.degraded: str | None = None
        self._warned_at = -1e18

    def _emit(self, before: BreakerSnapshot, after: BreakerSnapshot) -> None:
        if self.on_change is None:
            return
        if before.state is not after.state or (after.state is BreakerState.OPEN and before.cause != after.cause):
            self.on_change(self.name, before.state, after.state, after.cause)

    def _backend_failed(self, exc: Exception) -> None:
        self.degraded = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if now - self._warned_at >= self.warn_every:
            self._warned_at = now
            log.warning("breaker of %s: state backend failed (%s); failing open", self.name, self.degraded)

    async def allow(self) -> bool:
        """Whether a call may go out now (in half-open: only the allowed number of probes).

        An allowed call must be followed by exactly one :meth:`record` (or :meth:`release`).
        """
        try:
            allowed, before, after = await self.backend.acquire(self.name, self.policy, self.clock())
        except Exception as exc:
            self._backend_failed(exc)
            return True
        self.degraded = None
        self._emit(before, after)
        return allowed

    async def record(self, ok: bool, category: str | None = None) -> BreakerSnapshot:
        """Record a call's result; ``category`` decides whether a failure counts. Returns the
        state after it.

        A failure that is not the vendor's fault (a client error or a throttle: the vendor
        answered) counts as a sign of life, like a success, so a half-open probe slot is never
        left dangling.
        """
        ok_for_breaker = ok or category not in FAILURE_CATEGORIES
        try:
            before, after = await self.backend.record(self.name, self.policy, self.clock(), ok_for_breaker,
                                                      category)
        except Exception as exc:
            self._backend_failed(exc)
            return BreakerSnapshot()
        self._emit(before, after)
        return after

    async def release(self) -> None:
        """Give back an allowed call that never got a result (it was cancelled)."""
        try:
            before, after = await self.backend.record(self.name, self.policy, self.clock(), None, None)
        except Exception as exc:
            self._backend_failed(exc)
            return
        self._emit(before, after)

    async def refuses(self) -> bool:
        """Whether the breaker is open right now (a peek: takes no probe slot)."""
        try:
            snap = await self.backend.snapshot(self.name)
        except Exception as exc:
            self._backend_failed(exc)
            return False
        until = open_until(snap, self.policy)
        return until is not None and self.clock() < until

    async def reset(self) -> None:
        """Close the breaker by hand (``waystation breaker reset``)."""
        before = await self.backend.snapshot(self.name)
        await self.backend.reset(self.name)
        self._emit(before, BreakerSnapshot())

    async def state(self) -> BreakerSnapshot:
        """The current state."""
        return await self.backend.snapshot(self.name)
