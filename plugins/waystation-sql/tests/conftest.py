"""Database fixtures: a SQLite file per test, and a unique schema on the real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from waystation.testing.services import service_missing

PG_URL = os.environ.get("WAYSTATION_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file URL in a directory that does not exist yet."""
    return f"sqlite:///{tmp_path / 'db' / 'leads.db'}"


def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=3):
            return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A unique schema on the local PostgreSQL, dropped afterwards (skip when the server is absent,
    but never under CI=true)."""
    problem = _pg_available()
    if problem:
        service_missing(f"PostgreSQL on 127.0.0.1:5432 is not reachable: {problem}")
    import psycopg

    name = f"ws_sql_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
