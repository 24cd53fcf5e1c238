"""The core's standard station tests (``waystation.testing.StationTests``) for TruePeopleSearchStation,
the fake vendor serving the site's pages from ``tests/fixtures`` (robots.txt, results, detail page)."""

from __future__ import annotations

from pathlib import Path

from waystation.testing import StationTests
from waystation.testing.fake_vendor import Reply
from waystation_peoplesearch.station import TruePeopleSearchStation

FIXTURES = Path(__file__).parent / "fixtures"
HTML = "text/html; charset=utf-8"


def page(name: str) -> Reply:
    """``tests/fixtures/<name>.html`` as an HTML reply."""
    return Reply.text((FIXTURES / f"{name}.html").read_text(encoding="utf-8"), content_type=HTML)


class TestTruePeopleSearchStandard(StationTests):
    """Opted in, no pacing: John Smith of Denver, CO is found on his detail page."""

    station_class = TruePeopleSearchStation
    sample_lead = {"first_name": "John", "last_name": "Smith", "city": "Denver", "state": "CO", "age": 45,
                   "email": "j.smith@example.org", "lead_source": "webinar-2026-10"}
    settings = {"base_url": "{vendor_url}", "enabled_by_user": True, "request_interval": 0,
                "contact": "ops@example.com"}
    fake_responses = {
        "/robots.txt": Reply.text("User-agent: *\nAllow: /\n"),
        "/results": page("results_john_smith"),
        "/find/person/px0l4n6r2u8t1m0q9": page("detail_px0l4n6r2u8t1m0q9"),
    }
    expected_fields = {"phone": "+13035550100", "age": 45, "current_address": "123 Main St, Denver, CO 80201"}
