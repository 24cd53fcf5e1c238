"""Choosing the result card that is the lead: name, location and age agreement, scored 0..1."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from waystation_peoplesearch.parse import Card

#: Weight of each kind of agreement; a kind the lead gives no data for is left out of the sum.
WEIGHTS = {"name": 0.5, "location": 0.35, "age": 0.15}


@dataclass(frozen=True, slots=True)
class Wanted:
    """The person a lead describes (what a card is compared with)."""

    first_name: str
    last_name: str
    middle_name: str | None = None
    city: str | None = None
    state: str | None = None
    age: int | None = None


@dataclass(frozen=True, slots=True)
class Scored:
    """A card with its score and the part scores it is made of."""

    card: Card
    score: float
    parts: dict[str, float]


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^a-z']+", text.lower().replace("-", " ")) if t]


def _norm(text: str | None) -> str:
    return " ".join(_tokens(text or ""))


def name_score(card_name: str, want: Wanted) -> float | None:
    """0..1 agreement of names; ``None`` when the last name is not on the card (not a candidate)."""
    tokens = _tokens(card_name)
    last = _tokens(want.last_name)
    if not tokens or not last or not all(t in tokens for t in last):
        return None
    rest = [t for t in tokens if t not in last and t not in ("jr", "sr", "ii", "iii", "iv")]
    first = _tokens(want.first_name)[:1]
    if not first or not rest:
        return 0.2
    f, card_first = first[0], rest[0]
    if f == card_first:
        score = 1.0
    elif card_first.startswith(f) or f.startswith(card_first):
        score = 0.6  # an initial, or a short form (Jon / Jonathan)
    else:
        score = 0.2
    middle = _tokens(want.middle_name or "")[:1]
    if middle and len(rest) > 1 and rest[1][0] != middle[0][0]:
        score *= 0.7
    return score


def location_score(card: Card, want: Wanted) -> float | None:
    """0..1 agreement of places (current city/state; a past city counts less); ``None``: unknown."""
    city, state = _norm(want.city), (want.state or "").strip().upper()
    if not city and not state:
        return None
    if card.city is None and card.state is None and not card.past_locations:
        return 0.0
    if state and (card.state or "").upper() == state:
        if not city or _norm(card.city) == city:
            return 1.0
        best = 0.4
    else:
        best = 0.0
    for past_city, past_state in card.past_locations:
        if past_state.upper() == state and (not city or _norm(past_city) == city):
            best = max(best, 0.6)
    return best


def age_score(card: Card, want: Wanted) -> float | None:
    """0..1 agreement of ages (±1 year is a full match); ``None`` when either age is unknown."""
    if want.age is None or card.age is None:
        return None
    diff = abs(want.age - card.age)
    return 1.0 if diff <= 1 else 0.6 if diff <= 3 else 0.3 if diff <= 5 else 0.0


def score(card: Card, want: Wanted) -> Scored | None:
    """The card's score, or ``None`` when it cannot be the lead (another last name)."""
    parts: dict[str, float] = {}
    name = name_score(card.name, want)
    if name is None:
        return None
    parts["name"] = name
    loc = location_score(card, want)
    if loc is not None:
        parts["location"] = loc
    age = age_score(card, want)
    if age is not None:
        parts["age"] = age
    weight = sum(WEIGHTS[k] for k in parts)
    total = sum(WEIGHTS[k] * v for k, v in parts.items()) / weight
    return Scored(card, round(total, 3), parts)


def rank(cards: Sequence[Card], want: Wanted) -> list[Scored]:
    """Candidate cards, best first (page order breaks ties)."""
    scored = [s for c in cards if (s := score(c, want)) is not None]
    return sorted(scored, key=lambda s: -s.score)
