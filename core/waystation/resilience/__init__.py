"""Retries, timeouts, circuit breakers and rate limits: one guard per station."""

from waystation.resilience.breaker import BreakerState, CircuitBreaker
from waystation.resilience.policies import BreakerPolicy, RateLimit, RetryPolicy, classify_error
from waystation.resilience.ratelimit import StationLimiter
from waystation.resilience.redis_shared import (
    RedisBreakerBackend,
    RedisConcurrency,
    RedisRateLimiter,
    SharedRedis,
)

__all__ = [
    "BreakerPolicy",
    "BreakerState",
    "CircuitBreaker",
    "RateLimit",
    "RedisBreakerBackend",
    "RedisConcurrency",
    "RedisRateLimiter",
    "RetryPolicy",
    "SharedRedis",
    "StationLimiter",
    "classify_error",
]
