"""One rule for tests that need a local service (Redis, PostgreSQL, the installed plugins): skip
with the reason on a laptop without it, fail under CI (``CI`` set to ``true``, ``1`` or ``yes``),
where a skipped test would hide that the service was never tested."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["service_missing", "under_ci"]


def under_ci() -> bool:
    """Whether the tests run under CI (``CI=true``, ``1`` or ``yes``, any case)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def service_missing(message: str) -> NoReturn:
    """Skip the test with ``message``, or fail it under CI."""
    if under_ci():
        pytest.fail(f"required under CI: {message}")
    pytest.skip(message)
