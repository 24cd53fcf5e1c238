"""Every exception waystation raises or understands.

Stations raise the *step errors* below (or any exception) from ``process``; the engine's retry
policy classifies them into categories (``timeout``, ``connection``, ``throttled``,
``server_error``, ``client_error``, ``permanent``, ``blocked``, ``exhausted``, ``invalid_output``).
"""

from __future__ import annotations

from dataclasses import dataclass


class WaystationError(Exception):
    """Base class of every error waystation raises itself."""


# --------------------------------------------------------------------------- compile time


@dataclass(frozen=True, slots=True)
class Problem:
    """One static error in a route: where it is and what is wrong."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file or "<route>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


class RouteError(WaystationError):
    """A route that cannot be loaded or compiled; ``problems`` lists the errors found (at most
    ``MAX_REPORTED_ERRORS`` of them, then one line counting the rest; ``total`` is how many)."""

    def __init__(self, problems: list[Problem], total: int | None = None) -> None:
        from waystation.limits import MAX_REPORTED_ERRORS

        self.total = max(total or 0, len(problems))
        if self.total > MAX_REPORTED_ERRORS:
            first = problems[:MAX_REPORTED_ERRORS]
            more = self.total - len(first)
            problems = [*first, Problem(f"... and {more:,} more error(s) (only the first {MAX_REPORTED_ERRORS} "
                                        "are reported)", first[-1].file if first else None)]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConditionSyntaxError(WaystationError):
    """A malformed ``condition:`` expression; ``column`` is 1-based within the expression."""

    def __init__(self, message: str, expression: str, column: int) -> None:
        self.expression = expression
        self.column = column
        self.reason = message
        super().__init__(f"{message} at column {column} in condition {expression!r}")


class PluginError(WaystationError):
    """A plugin that could not be loaded or registered (raised only in strict mode)."""


class DuplicateStationError(WaystationError):
    """Two plugins register a station under the same name."""


# --------------------------------------------------------------------------- step errors


class CheckpointFailed(WaystationError):
    """The checkpoint store failed to save a paid step's intent before its call: the call is not
    made, and this is the lead's error, not the station's (never retried as a step failure, never
    recorded as a failed step); the lead stops here and can be resumed once the store is back."""


class StepError(WaystationError):
    """Base of the errors a station raises to say how its call failed.

    ``category`` drives the retry policy's ``retry_on``; ``retryable`` is the default answer.
    """

    category = "error"
    retryable = False
    #: What the failed call cost anyway (a paid search before a failing details call): the engine
    #: books it against the budgets and the step's cost. Set it with :meth:`costing`.
    incurred_cost: float = 0.0

    def costing(self, amount: float) -> StepError:
        """Mark that this failed call still cost ``amount`` USD; returns ``self`` to ``raise``."""
        self.incurred_cost = amount
        return self


class PermanentError(StepError):
    """The call can never succeed as made (bad key, bad request, unsupported number): no retry."""

    category = "permanent"


class TransientError(StepError):
    """A passing failure (a dropped connection, a flaky endpoint): retried."""

    category = "transient"
    retryable = True


class VendorTimeout(TransientError):
    """The vendor did not answer in time."""

    category = "timeout"


class ServerError(TransientError):
    """The vendor answered 5xx."""

    category = "server_error"

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class ThrottledError(TransientError):
    """The vendor answered 429 (or the like); ``retry_after`` seconds, when it said so."""

    category = "throttled"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class BlockedError(PermanentError):
    """A site refused the client (captcha, "Access Denied"): not retried, opens the breaker."""

    category = "blocked"
    trips_breaker = True


class AuthError(PermanentError):
    """The vendor refused the credentials (401/403): not retried, opens the breaker."""

    category = "auth"
    trips_breaker = True


class QuotaExhaustedError(PermanentError):
    """The account is out of credits or quota (402, a monthly quota 429).

    Not retried; the station's breaker opens with cause ``exhausted`` for ``reset_after_exhausted``.
    """

    category = "exhausted"
    trips_breaker = True


class OutcomeValidationError(WaystationError):
    """A station returned fields it does not declare, or of the wrong type."""

    category = "invalid_output"
