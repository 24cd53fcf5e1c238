"""Fixtures: a Telnyx Number Lookup v2 fake on 127.0.0.1 serving the documented exchanges."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

KEY = "KEY0190TELNYXsecretZq7"
EXAMPLES: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "telnyx-number-lookup-examples.json").read_text())


def example(name: str) -> dict[str, Any]:
    """A deep copy of one documented exchange (``request`` / ``response``)."""
    return copy.deepcopy(EXAMPLES[name])


def assert_key_only_in_auth_header(server: HTTPServer, key: str = KEY) -> None:
    """Every request the fake saw carries ``key`` in ``Authorization: Bearer`` and nowhere else."""
    assert server.log, "no request reached the fake"
    for request, _response in server.log:
        assert request.headers.get("Authorization") == f"Bearer {key}"
        assert key not in request.url
        assert key not in request.query_string.decode()
        assert key not in request.get_data(as_text=True)
        for name, value in request.headers.items():
            if name.lower() != "authorization":
                assert key not in value, f"key leaked in header {name}"


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    """Serve the fake on 127.0.0.1 (any free port)."""
    return ("127.0.0.1", 0)


@pytest.fixture
def telnyx(httpserver: HTTPServer) -> Iterator[HTTPServer]:
    """The fake, cleared after the test."""
    yield httpserver
    httpserver.clear()


@pytest.fixture
def settings(telnyx: HTTPServer) -> dict[str, Any]:
    """Station settings pointing at the fake."""
    return {"api_key": KEY, "base_url": telnyx.url_for("/v2"), "allow_hosts": ["127.0.0.1"]}
