"""Local services for the core's tests: Redis on 127.0.0.1:6379 (skipped with a reason when absent,
a failure under CI=true). The ``store_url`` fixture is in conftest.py."""

from __future__ import annotations

import os

import pytest
from waystation.testing.services import service_missing

REDIS_URL = os.environ.get("WAYSTATION_TEST_REDIS", "redis://127.0.0.1:6379/0")
KINDS = ["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)]


def require_redis() -> None:
    """Skip (or fail under CI=true) when Redis does not answer."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except Exception as exc:
        service_missing(f"Redis not reachable at {REDIS_URL}: {exc}")
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


PG_URL = os.environ.get("WAYSTATION_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def require_postgres() -> None:
    """Skip (or fail under CI=true) when PostgreSQL (and the ``postgres`` extra) is not there."""
    try:
        import sqlalchemy as sa
    except ImportError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the postgres extra (SQLAlchemy, psycopg) is required under CI=true: {exc}")
        pytest.skip(f"SQLAlchemy not installed: {exc}")
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI=true but {PG_URL} is unreachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc}")


def drop_pg_schema(schema: str) -> None:
    """Drop a test's PostgreSQL schema and everything in it."""
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()
