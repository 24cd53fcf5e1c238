"""The policy models a station declares and a route step may override.

They are pydantic models so that a route's ``retry: {max_attempts: 5}`` is validated with the same
rules as a station's class attribute ``retry = RetryPolicy(max_attempts=5)``.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from waystation.errors import OutcomeValidationError, StepError

#: Error categories ``retry_on`` can name.
CATEGORIES = (
    "timeout",
    "connection",
    "throttled",
    "server_error",
    "client_error",
    "transient",
    "permanent",
    "auth",
    "blocked",
    "exhausted",
    "invalid_output",
    "error",
)

Category = Literal[
    "timeout",
    "connection",
    "throttled",
    "server_error",
    "client_error",
    "transient",
    "permanent",
    "auth",
    "blocked",
    "exhausted",
    "invalid_output",
    "error",
]

DEFAULT_RETRY_ON: tuple[Category, ...] = ("timeout", "connection", "throttled", "server_error", "transient")


def _status_of(exc: BaseException) -> int | None:
    """The HTTP status of an httpx-style ``HTTPStatusError`` without importing httpx."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def classify_error(exc: BaseException) -> str:
    """Map an exception to one of :data:`CATEGORIES`.

    Works on waystation's own :class:`~waystation.errors.StepError` family, on the builtin
    ``TimeoutError``/``ConnectionError`` family, and on httpx errors recognised by class name so
    that the core never imports httpx.
    """
    if isinstance(exc, StepError):
        return exc.category
    if isinstance(exc, OutcomeValidationError):
        return "invalid_output"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionError):
        return "connection"
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"TimeoutException", "ReadTimeout", "ConnectTimeout", "PoolTimeout", "WriteTimeout"}:
        return "timeout"
    if names & {"ConnectError", "ReadError", "WriteError", "RemoteProtocolError", "NetworkError"}:
        return "connection"
    status = _status_of(exc)
    if status is not None:
        if status == 429:
            return "throttled"
        if status == 408:
            return "timeout"
        if status >= 500:
            return "server_error"
        if status in (401, 403):
            return "auth"
        return "client_error"
    return "error"


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds the vendor asked us to wait (``ThrottledError.retry_after`` or a ``Retry-After``)."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, int | float):
        return float(value)
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        raw = headers.get("retry-after")
        if raw is not None:
            try:
                return max(0.0, float(raw))
            except ValueError:
                return None
    return None


class RetryPolicy(BaseModel):
    """Exponential backoff with jitter, per station (overridable per step with ``retry:``).

    ``max_attempts`` counts the first call: 1 means no retry. ``retry_on`` names error
    categories (see :func:`classify_error`); a throttled error's ``Retry-After`` is honoured,
    capped by ``max_delay``. ``asyncio.CancelledError`` is never retried.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=1, ge=1, le=100)
    base_delay: float = Field(default=0.5, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    max_delay: float = Field(default=30.0, ge=0)
    jitter: float = Field(default=0.5, ge=0)
    retry_on: tuple[Category, ...] = DEFAULT_RETRY_ON

    def should_retry(self, exc: BaseException) -> bool:
        """Whether this policy retries ``exc`` (its category is in ``retry_on``)."""
        if isinstance(exc, asyncio.CancelledError):
            return False
        return classify_error(exc) in self.retry_on


class BreakerPolicy(BaseModel):
    """A circuit breaker per station: ``closed`` → ``open`` after ``failure_threshold``
    consecutive failures → ``half_open`` after ``reset_after`` seconds, where at most
    ``half_open_max_calls`` probes go through → ``closed`` on success, ``open`` on failure.

    A vendor that says the account is out of quota opens it with cause ``exhausted`` for
    ``reset_after_exhausted`` seconds (or until ``waystation breaker reset STATION``).
    ``shared: redis`` keeps the state in Redis so every worker sees the same breaker.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    failure_threshold: int = Field(default=5, ge=1)
    reset_after: float = Field(default=60.0, ge=0)
    half_open_max_calls: int = Field(default=1, ge=1)
    reset_after_exhausted: float = Field(default=6 * 3600.0, ge=0)
    shared: Literal["process", "redis"] = "process"


class RateLimit(BaseModel):
    """Calls per second and concurrent calls for one station, shared by every lead in the
    process (``shared: redis``: by every worker)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_second: float | None = Field(default=None, gt=0)
    concurrent: int | None = Field(default=None, ge=1)
    shared: Literal["process", "redis"] = "process"
