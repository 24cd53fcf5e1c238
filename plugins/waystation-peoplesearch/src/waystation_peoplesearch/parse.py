"""Reading TruePeopleSearch pages: result cards, the person detail page, and block pages.

Pure functions over HTML text (selectolax's Lexbor parser, imported here, so this module is only
imported when the station really runs). The structure relied on:

- results page: cards ``.card-summary[data-detail-link]``, each with a ``.content-header`` (the
  name) and ``.content-value`` spans after labels ("Age", "Lives in", "Used to live in"). The
  label may be a span, plain text before the value ("Age: <span>45</span>"), inside the value
  ("<span class=content-value>Age 45</span>"), or missing (a lone "45"; "Age 45" anywhere in the
  card); places may be "Denver, CO" or "Denver CO", several separated by ";" or ",";
- detail page: ``#personDetails[data-fn][data-ln][data-age][data-city][data-state]``; phones
  ``a[data-link-to-more="phone"] span`` with the line type in a sibling ``span.smaller``
  (Wireless / Landline / Voip) and lines "Possible Primary Phone" / "Last reported Mon YYYY" in the
  same block (and the carrier, when shown); the current address as
  ``a[data-link-to-more="address"]`` with schema.org ``itemprop`` spans (``streetAddress``,
  ``addressLocality``, ``addressRegion``, ``postalCode``) or as plain text lines
  (``123 Main St<br>Denver, CO 80201``), read as one line ``"123 Main St, Denver, CO 80201"`` (the
  form SkipTracingStation gives);
- block pages: "Access Denied", captcha widgets or a captcha URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_LAST_REPORTED = re.compile(r"last\s+reported\s+([A-Za-z]{3})[a-z]*\.?\s+(\d{4})", re.I)
_CITY_STATE = re.compile(r"^\s*(.+?),\s*([A-Za-z]{2})\b")
#: "Aurora CO" / "Aurora, CO" / "Colorado Springs CO 80903": a place in a list of places.
_PLACE = re.compile(r"([A-Za-z][A-Za-z .'-]*?)\s*,?\s+([A-Z]{2})\b(?:\s+\d{5}(?:-\d{4})?)?")
_AGE_TEXT = re.compile(r"\bage\s*:?\s*(\d{1,3})\b", re.I)
_CITY_LINE = re.compile(r"^\s*(.+?),?\s+([A-Za-z]{2})(?:\s+(\d{5}(?:-\d{4})?))?\s*$")
#: Bounds on the work a page can cause (a page may list thousands of cards or phones).
MAX_CARDS = 100
MAX_PHONES = 50
_NO_RESULTS = re.compile(r"could not find any records|no (?:records|results) (?:were )?found", re.I)
_BLOCK_TITLES = re.compile(r"access denied|attention required|just a moment|are you a (?:human|robot)|"
                           r"captcha|blocked", re.I)
_CAPTCHA_SELECTORS = (
    ".g-recaptcha", ".h-captcha", ".cf-turnstile", "#challenge-form", "#captcha", "#captcha-form",
    "iframe[src*='recaptcha']", "iframe[src*='hcaptcha']", "[data-sitekey]",
    "script[src*='recaptcha']", "script[src*='hcaptcha']",
)
_PHONE_TYPES = {"wireless": "wireless", "mobile": "wireless", "cell": "wireless", "landline": "landline",
                "voip": "voip"}


class LayoutError(ValueError):
    """A page that is neither a result, a "no records" page nor a block page: the layout changed."""


@dataclass(frozen=True, slots=True)
class Card:
    """One result card: the name, age and location shown, and the link to the detail page."""

    link: str
    name: str
    age: int | None = None
    city: str | None = None
    state: str | None = None
    past_locations: tuple[tuple[str, str], ...] = ()

    @property
    def person_id(self) -> str:
        """The id at the end of the detail link (``/find/person/{id}``)."""
        return self.link.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Phone:
    """One phone of a detail page."""

    number: str  # E.164
    type: str | None  # wireless | landline | voip | None when not shown
    last_reported: str | None  # "YYYY-MM"
    primary: bool
    provider: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The phone as the ``phones`` field lists it (the keys SkipTracingStation uses, and
        ``primary``)."""
        return {"number": self.number, "type": self.type, "last_reported": self.last_reported,
                "provider": self.provider, "primary": self.primary}


@dataclass(frozen=True, slots=True)
class Detail:
    """What a detail page says about the person."""

    first_name: str
    last_name: str
    age: int | None
    city: str | None
    state: str | None
    address: str | None
    phones: list[Phone] = field(default_factory=list)


def _text(node: LexborNode | None) -> str:
    if node is None:
        return ""
    return " ".join((node.text(separator=" ") or "").split())


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    m = re.search(r"\d{1,3}", value)
    return int(m.group()) if m else None


def to_e164(raw: str) -> str | None:
    """A US/NANP number as E.164 (``(303) 555-0100`` → ``+13035550100``), or ``None``."""
    digits = re.sub(r"\D", "", raw)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) != 10 or digits[0] in "01" or digits[3] in "01":
        return None
    return "+1" + digits


def last_reported(text: str) -> str | None:
    """"Last reported Jan 2026" → ``"2026-01"`` (``None`` when the text has no such line)."""
    m = _LAST_REPORTED.search(text)
    if not m:
        return None
    month = _MONTHS.get(m.group(1).lower())
    return f"{m.group(2)}-{month:02d}" if month else None


def blocked_reason(html: str, url_path: str = "") -> str | None:
    """Why a page is a bot-block page (captcha / "Access Denied"), or ``None`` when it is not."""
    if "captcha" in url_path.lower():
        return f"redirected to a captcha page ({url_path})"
    tree = LexborHTMLParser(html)
    title = _text(tree.css_first("title"))
    if title and _BLOCK_TITLES.search(title):
        return f"block page: {title[:80]!r}"
    for sel in _CAPTCHA_SELECTORS:
        if tree.css_first(sel) is not None:
            return f"captcha page ({sel})"
    h1 = _text(tree.css_first("h1"))
    if h1 and re.search(r"access denied", h1, re.I):
        return f"block page: {h1[:80]!r}"
    return None


def _split_location(value: str) -> tuple[str, str] | None:
    m = _CITY_STATE.match(value)
    if m:
        return m.group(1).strip(), m.group(2).upper()
    places = _places(value)
    return places[0] if len(places) == 1 else None


def _places(value: str) -> list[tuple[str, str]]:
    """Every "City, ST" / "City ST" in a list of places ("Aurora CO, Boulder CO"; "Denver, CO; Pueblo, CO")."""
    out: list[tuple[str, str]] = []
    for part in value.split(";"):
        for m in _PLACE.finditer(part):
            city = m.group(1).strip(" ,")
            if city:
                out.append((city, m.group(2).upper()))
    return out


def _label_of(value_node: LexborNode) -> str:
    """The label text before a ``.content-value`` span (its previous sibling, or its parent's text)."""
    prev = value_node.prev
    while prev is not None and (prev.is_text_node and not (prev.text() or "").strip()):
        prev = prev.prev
    if prev is not None:
        label = _text(prev)
        if label:
            return label.lower()
    parent = value_node.parent
    if parent is None:
        return ""
    whole = _text(parent)
    return whole.replace(_text(value_node), "").strip().lower()


def parse_results(html: str) -> list[Card]:
    """The result cards of a results page, in page order.

    An empty list means the page says it found no records. Raises :class:`LayoutError` when the page
    has neither cards nor a "no records" message (so a changed layout is not mistaken for misses).
    """
    tree = LexborHTMLParser(html)
    cards: list[Card] = []
    for node in tree.css(".card-summary[data-detail-link]"):
        if len(cards) >= MAX_CARDS:
            break
        link = (node.attributes.get("data-detail-link") or "").strip()
        name = _text(node.css_first(".content-header"))
        if not link or not name:
            continue
        age: int | None = None
        city = state = None
        past: list[tuple[str, str]] = []
        for value_node in node.css(".content-value"):
            value = _text(value_node)
            label = _label_of(value_node)
            inline = _AGE_TEXT.match(value)
            if inline and age is None:           # the label inside the value: "Age 45"
                age = int(inline.group(1))
            elif "age" in label or (not label and re.fullmatch(r"\d{1,3}", value)):
                age = _int(value) if age is None else age
            elif "used to live" in label or "previous" in label or value.lower().startswith("used to live"):
                past.extend(_places(re.sub(r"(?i)^used to live in:?", "", value)))
            elif "lives in" in label or "current" in label or (not label and _split_location(value)):
                loc = _split_location(re.sub(r"(?i)^lives in:?", "", value))
                if loc and city is None:
                    city, state = loc
        if age is None or (city is None and not past):
            whole = _text(node)
            if age is None and (m := _AGE_TEXT.search(whole)):
                age = int(m.group(1))
            if not past and (m2 := re.search(r"(?i)used to live in:?\s*(.+?)(?:related to|$)", whole)):
                past.extend(_places(m2.group(1)))
            if city is None and (m3 := re.search(r"(?i)lives in:?\s*(.+?)(?:used to live|related to|$)", whole)):
                first = _places(m3.group(1))
                if first:
                    city, state = first[0]
        cards.append(Card(link, name, age, city, state, tuple(past[:20])))
    if not cards:
        body = _text(tree.body) if tree.body is not None else ""
        if not _NO_RESULTS.search(body):
            raise LayoutError("results page has no result cards (.card-summary[data-detail-link]) and no "
                              "'no records' message: the site's layout may have changed")
    return cards


def _phone_block(anchor: LexborNode) -> LexborNode:
    """The smallest ancestor of a phone link that holds its type and report lines."""
    node = anchor.parent
    while node is not None and node.parent is not None:
        if node.css_first("span.smaller") is not None or node.tag in ("div", "li", "td", "section"):
            return node
        node = node.parent
    return anchor


def parse_detail(html: str, max_phones: int = MAX_PHONES) -> Detail | None:
    """The person on a detail page, or ``None`` when the page has no ``#personDetails``."""
    tree = LexborHTMLParser(html)
    root = tree.css_first("#personDetails")
    if root is None:
        return None
    attrs = root.attributes
    first = (attrs.get("data-fn") or "").strip()
    last = (attrs.get("data-ln") or "").strip()
    age = _int(attrs.get("data-age"))
    city = (attrs.get("data-city") or "").strip() or None
    state = (attrs.get("data-state") or "").strip().upper() or None

    street = locality = region = postal = ""
    addr = tree.css_first('a[data-link-to-more="address"]')
    if addr is not None:
        street, locality, region, postal = (_text(addr.css_first(f'[itemprop="{prop}"]')) for prop in
                                            ("streetAddress", "addressLocality", "addressRegion", "postalCode"))
        if not (street or locality or region or postal):
            street, locality, region, postal = _plain_address(addr)
    if not (street or locality or region or postal):
        locality, region = city or "", state or ""
    tail = " ".join(p for p in (region.upper(), postal) if p)
    address = ", ".join(p for p in (street, locality, tail) if p) or None

    phones: list[Phone] = []
    seen: set[str] = set()
    blocks: dict[int, tuple[str, str | None, str | None]] = {}  # per block: text, kind, provider
    for anchor in tree.css('a[data-link-to-more="phone"]'):
        if len(phones) >= max_phones:
            break  # bounded work and a bounded field, however many phones the page lists
        span = anchor.css_first("span")
        number = to_e164(_text(span) if span is not None else _text(anchor))
        if number is None or number in seen:
            continue
        seen.add(number)
        block = _phone_block(anchor)
        key = block.mem_id  # phones sharing one container read its text once, not once each
        if key not in blocks:
            kind_node = block.css_first("span.smaller")
            kind = _PHONE_TYPES.get(_text(kind_node).lower()) if kind_node is not None else None
            provider = next((t for n in block.css("span.dt-sb") if (t := _text(n))
                             and "primary" not in t.lower() and last_reported(t) is None), None)
            blocks[key] = (_text(block), kind, provider)
        block_text, kind, provider = blocks[key]
        phones.append(Phone(number, kind, last_reported(block_text),
                            "possible primary phone" in block_text.lower(), provider))
    return Detail(first, last, age, city, state, address, phones)


def _plain_address(addr: LexborNode) -> tuple[str, str, str, str]:
    """An address written as text lines (``123 Main St<br>Denver, CO 80201``): street, city,
    state, ZIP (empty strings for what is not there)."""
    lines = [" ".join(line.split()) for line in (addr.text(separator="\n") or "").split("\n")]
    lines = [line for line in lines if line]
    if not lines:
        return "", "", "", ""
    m = _CITY_LINE.match(lines[-1])
    if m is None:
        return ", ".join(lines), "", "", ""
    street = ", ".join(lines[:-1])
    return street, m.group(1).strip(" ,"), m.group(2).upper(), m.group(3) or ""
