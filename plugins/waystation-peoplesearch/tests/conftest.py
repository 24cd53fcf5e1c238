"""Fixtures: a TruePeopleSearch look-alike on 127.0.0.1 serving the HTML fixtures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

FIXTURES = Path(__file__).parent / "fixtures"
HTML = "text/html; charset=utf-8"

JOHN = {"first_name": "John", "last_name": "Smith", "city": "Denver", "state": "CO"}
JOHN_QUERY = "name=John%20Smith&citystatezip=Denver%2C%20CO"
JOHN_DETAIL = "/find/person/px0l4n6r2u8t1m0q9"


def page(name: str) -> str:
    """The text of ``tests/fixtures/<name>.html``."""
    return (FIXTURES / f"{name}.html").read_text(encoding="utf-8")


@pytest.fixture
def settings(httpserver: HTTPServer) -> dict[str, Any]:
    """Station settings pointing at the local server, opted in, with no pacing between requests."""
    return {"base_url": httpserver.url_for("/").rstrip("/"), "enabled_by_user": True,
            "request_interval": 0, "contact": "ops@example.com"}


@pytest.fixture
def site(httpserver: HTTPServer) -> Callable[..., HTTPServer]:
    """Serve robots.txt, John Smith's results page and detail page (each part replaceable)."""

    def serve(robots: str | None = "User-agent: *\nAllow: /\n", results: str = "results_john_smith",
              detail: str | None = "detail_px0l4n6r2u8t1m0q9", query: str = JOHN_QUERY) -> HTTPServer:
        if robots is not None:
            httpserver.expect_request("/robots.txt").respond_with_data(robots, content_type="text/plain")
        else:
            httpserver.expect_request("/robots.txt").respond_with_data("not found", status=404)
        httpserver.expect_request("/results", query_string=query).respond_with_data(
            page(results), content_type=HTML)
        if detail is not None:
            httpserver.expect_request(JOHN_DETAIL).respond_with_data(page(detail), content_type=HTML)
        return httpserver

    return serve


def requests_to(server: HTTPServer, path: str) -> int:
    """How many requests the server received for ``path``."""
    return sum(1 for req, _ in server.log if req.path == path)
