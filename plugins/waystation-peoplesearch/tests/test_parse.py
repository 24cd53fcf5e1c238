"""The page readers and the card scoring, on the HTML fixtures."""

from __future__ import annotations

import pytest
from conftest import page
from waystation_peoplesearch.match import Wanted, name_score, rank
from waystation_peoplesearch.parse import (
    LayoutError,
    blocked_reason,
    last_reported,
    parse_detail,
    parse_results,
    to_e164,
)
from waystation_peoplesearch.station import order_phones


def test_cards() -> None:
    cards = parse_results(page("results_john_smith"))
    assert [(c.person_id, c.name, c.age, c.city, c.state) for c in cards] == [
        ("p0r8l2n4u6m1t9q3x", "John Smith", 62, "Aurora", "CO"),
        ("px0l4n6r2u8t1m0q9", "John A Smith", 45, "Denver", "CO"),
        ("pq3jon5smith7b", "Jon Smith", 30, "Boulder", "CO"),
        ("pz9smithers1", "John Smithers", 45, "Denver", "CO"),
    ]
    assert cards[0].past_locations == (("Denver", "CO"), ("Pueblo", "CO"))


def test_no_records_and_layout_change() -> None:
    assert parse_results(page("results_none")) == []
    with pytest.raises(LayoutError):
        parse_results(page("unrecognised"))
    with pytest.raises(LayoutError):
        parse_results("")


def test_ranking_uses_location_and_age() -> None:
    cards = parse_results(page("results_john_smith"))
    ranked = rank(cards, Wanted("John", "Smith", city="Denver", state="CO"))
    assert [s.card.person_id for s in ranked][:2] == ["px0l4n6r2u8t1m0q9", "p0r8l2n4u6m1t9q3x"]
    assert "pz9smithers1" not in [s.card.person_id for s in ranked]  # another last name
    assert ranked[0].score == 1.0
    older = rank(cards, Wanted("John", "Smith", city="Aurora", state="CO", age=62))
    assert older[0].card.person_id == "p0r8l2n4u6m1t9q3x"


def test_name_score() -> None:
    want = Wanted("John", "Smith", middle_name="B")
    assert name_score("Mary Jones", want) is None
    assert name_score("John Smith", want) == 1.0
    assert name_score("J Smith", want) == 0.6
    assert name_score("John A Smith", want) == pytest.approx(0.7)
    assert name_score("Peter Smith", want) == 0.2
    assert name_score("John Smith-Jones", Wanted("John", "Smith-Jones")) == 1.0


def test_detail_and_phone_order() -> None:
    d = parse_detail(page("detail_no_primary"))
    assert d is not None and (d.first_name, d.last_name, d.age, d.city, d.state) == ("Ann", "Lee", 52,
                                                                                      "Portland", "OR")
    assert d.address == "Portland, OR"  # no address block: the data attributes
    # the invalid (000) number is dropped; wireless before landline, recent first
    assert [p.number for p in order_phones(d.phones)] == ["+15035550133", "+15035550122", "+15035550111"]
    assert parse_detail(page("results_john_smith")) is None


@pytest.mark.parametrize(("raw", "e164"), [("(303) 555-0100", "+13035550100"), ("1-720-555-0199", "+17205550199"),
                                          ("555-0100", None), ("(012) 555-0100", None), ("", None)])
def test_to_e164(raw: str, e164: str | None) -> None:
    assert to_e164(raw) == e164


def test_last_reported() -> None:
    assert last_reported("Last reported Jan 2026") == "2026-01"
    assert last_reported("last reported September 2019 T-Mobile") == "2019-09"
    assert last_reported("Possible Primary Phone") is None


def test_block_detection() -> None:
    assert blocked_reason(page("captcha")) is not None
    assert blocked_reason(page("access_denied")) is not None
    assert blocked_reason("<html><body>ok</body></html>", "/InternalCaptcha") is not None
    for ok in ("results_john_smith", "results_none", "detail_px0l4n6r2u8t1m0q9", "unrecognised"):
        assert blocked_reason(page(ok)) is None, ok
