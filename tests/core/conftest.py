"""Fixtures shared by the core's tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from services import REDIS_URL, purge_prefix, redis_available


@pytest.fixture
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A URL for a fresh, empty store of the parametrized kind."""
    kind = request.param
    if kind == "memory":
        yield "memory://"
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'ck.db'}"
    else:
        await redis_available()
        prefix = f"wstest-{uuid.uuid4().hex[:10]}"
        yield f"{REDIS_URL}?ttl=600&prefix={prefix}"
        await purge_prefix(prefix)


