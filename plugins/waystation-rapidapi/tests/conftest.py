"""Fixtures: a fake of the RapidAPI "Skip Tracing Working API" (and its gateway) on 127.0.0.1."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

KEY = "rapidKEY7f3e9aSECRETc1d2"
HOST = "skip-tracing-working-api.p.rapidapi.com"
EXAMPLES: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "rapidapi-skip-tracing-examples.json").read_text())


def example(name: str) -> Any:
    """A deep copy of one documented shape (``search_response``, ``details_response``, ...)."""
    return copy.deepcopy(EXAMPLES[name])


def gateway(status: str) -> dict[str, Any]:
    """A RapidAPI gateway error body (``401``, ``403``, ``429_quota``, ``429_rate``)."""
    return copy.deepcopy(EXAMPLES["gateway_errors (RapidAPI, not provider)"][status])


def assert_key_only_in_key_header(server: HTTPServer, key: str = KEY) -> None:
    """Every request carries ``key`` in ``X-RapidAPI-Key`` (and the host header) and nowhere else."""
    assert server.log, "no request reached the fake"
    for request, _response in server.log:
        assert request.headers.get("X-RapidAPI-Key") == key
        assert request.headers.get("X-RapidAPI-Host") == HOST
        assert key not in request.url
        assert key not in request.query_string.decode()
        assert key not in request.get_data(as_text=True)
        for name, value in request.headers.items():
            if name.lower() != "x-rapidapi-key":
                assert key not in value, f"key leaked in header {name}"


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    """Serve the fake on 127.0.0.1 (any free port)."""
    return ("127.0.0.1", 0)


@pytest.fixture
def rapid(httpserver: HTTPServer) -> Iterator[HTTPServer]:
    """The fake, cleared after the test."""
    yield httpserver
    httpserver.clear()


@pytest.fixture
def settings(rapid: HTTPServer) -> dict[str, Any]:
    """Station settings pointing at the fake."""
    return {"api_key": KEY, "base_url": rapid.url_for("").rstrip("/"), "allow_hosts": ["127.0.0.1"]}
