"""Local services for the core's tests: Redis on 127.0.0.1:6379 (skipped with a reason when absent,
a failure under CI=true). The ``store_url`` fixture is in conftest.py."""

from __future__ import annotations

import os

import pytest

REDIS_URL = os.environ.get("WAYSTATION_TEST_REDIS", "redis://127.0.0.1:6379/0")
KINDS = ["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)]


def require_redis() -> None:
    """Skip (or fail under CI=true) when Redis does not answer."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required under CI=true but {REDIS_URL} is unreachable: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    finally:
        client.close()


async def redis_available() -> None:
    """:func:`require_redis` for async fixtures and tests."""
    require_redis()


async def purge_prefix(prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
