"""The policy models a station declares and a route step may override.

They are pydantic models so that a route's ``retry: {max_attempts: 5}`` is validated with the same
rules as a station's class attribute ``retry = RetryPolicy(max_attempts=5)``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from waystation.errors import OutcomeValidationError, StepError

Category = Literal[
    "timeout",
    "connection",
    "throttled",
    "server_error",
    "client_error",
    "transient",
    "permanent",
    "bad_request",
    "not_found",
    "auth",
    "blocked",
    "exhausted",
    "invalid_output",
    "error",
]

#: Error categories ``retry_on`` can name.
CATEGORIES: tuple[str, ...] = get_args(Category)

DEFAULT_RETRY_ON: tuple[str, ...] = ("timeout", "connection", "throttled", "server_error", "transient")

_CLASS_NAME = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*\.)*[A-Z][A-Za-z0-9_]*$")


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
        if status == 402:
            return "exhausted"
        return "client_error"
    return "error"


def parse_retry_after(raw: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header value: delta-seconds or an HTTP date (RFC 9110)."""
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


#: Vendor headers that say when a rate-limit window resets, in the order they are read after
#: ``Retry-After``: seconds until the reset, or (a value above 10^9) the reset as an epoch time.
RESET_HEADERS: tuple[str, ...] = (
    "x-ratelimit-reset",            # Telnyx, GitHub-style APIs
    "x-ratelimit-requests-reset",   # RapidAPI's gateway
    "ratelimit-reset",              # IETF draft RateLimit header fields
    "x-rate-limit-reset",
)

#: A reset header value above this is an epoch time, not a number of seconds.
_EPOCH = 1e9


def parse_reset(raw: str | None, now: float | None = None) -> float | None:
    """Seconds from a rate-limit *reset* header value: seconds, or an epoch time (above 10^9)."""
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    if value > _EPOCH:
        return max(0.0, value - (time.time() if now is None else now))
    return max(0.0, value)


def retry_after_from_headers(headers: Mapping[str, str] | Any, now: float | None = None) -> float | None:
    """Seconds a vendor asked to wait, from response headers: ``Retry-After`` (delta-seconds or
    an HTTP date, RFC 9110) first, then the vendor reset headers of :data:`RESET_HEADERS`
    (seconds or an epoch time). ``None`` when none of them says. ``headers`` is any mapping with
    case-insensitive ``get`` (httpx, werkzeug) or lower-case keys."""
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    raw = getter("retry-after")
    if isinstance(raw, str):
        after = parse_retry_after(raw, now)
        if after is not None:
            return after
    for name in RESET_HEADERS:
        raw = getter(name)
        if isinstance(raw, str):
            after = parse_reset(raw, now)
            if after is not None:
                return after
    return None


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds the vendor asked us to wait (``ThrottledError.retry_after``, or the headers of an
    httpx-style error's response: see :func:`retry_after_from_headers`)."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return max(0.0, float(value))
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        return retry_after_from_headers(headers)
    return None


class RetryPolicy(BaseModel):
    """Exponential backoff with jitter, per station (overridable per step with ``retry:``).

    ``max_attempts`` counts the first call: 1 means no retry. The wait before retry *k* is
    ``min(max_delay, base_delay * multiplier ** (k - 1))`` plus a random jitter of up to
    ``jitter`` seconds. ``retry_on`` names error categories (see :func:`classify_error`, e.g.
    ``[timeout, throttled, server_error]``) and/or error class names (``ServerError``,
    ``httpx.ReadTimeout``: an error is retried when its class or a base class has that name). A
    vendor's ``Retry-After`` is honoured, capped by ``max_delay``. ``asyncio.CancelledError`` is
    never retried.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=1, ge=1, le=100)
    base_delay: float = Field(default=0.5, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    max_delay: float = Field(default=30.0, ge=0)
    jitter: float = Field(default=0.5, ge=0)
    retry_on: tuple[str, ...] = DEFAULT_RETRY_ON

    @field_validator("retry_on", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_validator("retry_on")
    @classmethod
    def _known_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name not in CATEGORIES and not _CLASS_NAME.match(name):
                raise ValueError(
                    f"{name!r} is neither an error category ({', '.join(CATEGORIES)}) nor an error "
                    "class name (CamelCase, e.g. ServerError or httpx.ReadTimeout)")
        return value

    def should_retry(self, exc: BaseException) -> bool:
        """Whether this policy retries ``exc``: its category, or the name of its class or of a
        base class, is in ``retry_on``. ``asyncio.CancelledError`` never is."""
        if isinstance(exc, asyncio.CancelledError) or not isinstance(exc, Exception):
            return False
        if classify_error(exc) in self.retry_on:
            return True
        names = set(self.retry_on)
        for klass in type(exc).__mro__:
            module = klass.__module__
            if names & {klass.__name__, f"{module}.{klass.__qualname__}",
                        f"{module.split('.')[0]}.{klass.__qualname__}"}:
                return True
        return False

    def backoff(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1 = the second attempt), jitter aside."""
        try:
            return float(min(self.max_delay, self.base_delay * self.multiplier ** (retry - 1)))
        except OverflowError:
            return self.max_delay

    def delay_for(self, exc: BaseException, retry: int) -> float:
        """The wait before retry ``retry`` after ``exc``: the vendor's ``Retry-After`` when it
        sent one (capped by ``max_delay``), else :meth:`backoff`."""
        after = retry_after_of(exc)
        return min(after, self.max_delay) if after is not None else self.backoff(retry)


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
