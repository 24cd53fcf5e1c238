"""Retries, timeouts, circuit breakers and rate limits: one guard per station."""

from waystation.resilience.breaker import BreakerState, CircuitBreaker
from waystation.resilience.policies import BreakerPolicy, RateLimit, RetryPolicy, classify_error
from waystation.resilience.ratelimit import StationLimiter

__all__ = [
    "BreakerPolicy",
    "BreakerState",
    "CircuitBreaker",
    "RateLimit",
    "RetryPolicy",
    "StationLimiter",
    "classify_error",
]
