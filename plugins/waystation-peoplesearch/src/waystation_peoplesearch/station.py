"""TruePeopleSearchStation: results page → best card → detail page → phones, age, address.

Off unless the user opts in (``enabled_by_user: true``): the site's data is not a consumer report
under the FCRA and its terms restrict automated use, so the decision is the user's. When on, it is
polite: one request at a time, paced (``request_interval``, and a robots.txt ``Crawl-delay`` when
larger), a User-Agent naming waystation and the user's contact, and robots.txt honoured.

HTTP goes through :mod:`waystation.http` and selectolax parses the pages; both are imported only
when the station opens / runs. Pages are read capped (``max_response_bytes``), redirects are
followed on the same host only, pages are parsed in a worker thread (``asyncio.to_thread``) with
bounded work (at most ``max_phones`` phones and 100 cards a page). robots.txt follows RFC 9309: a
4xx answer means no rules (everything allowed), a 5xx or an unreachable site means everything is
disallowed (the lead is a reasoned miss; robots.txt is asked again after ``robots_retry_after``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar, cast
from urllib.parse import quote, urlsplit
from urllib.robotparser import RobotFileParser

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict
from waystation import (
    BlockedError,
    BreakerPolicy,
    Outcome,
    PermanentError,
    RateLimit,
    RetryPolicy,
    Station,
    StationSettings,
    StepContext,
    StepError,
)
from waystation.http import VendorSettings

if TYPE_CHECKING:
    from waystation.http import VendorClient

    from waystation_peoplesearch.parse import Detail, Phone

__version__ = "0.1.0"

log = logging.getLogger("waystation.station.peoplesearch")

#: Indirection so tests can observe the pacing waits without sleeping.
_sleep = asyncio.sleep

PROVIDED = ("phone", "phones", "age", "current_address")
_TYPE_RANK = {"wireless": 0, "voip": 1, "landline": 2}


class PeopleSearchSettings(VendorSettings):
    """Settings of :class:`TruePeopleSearchStation` (route ``settings:`` or ``WAYSTATION_PEOPLESEARCH_*``).

    - ``enabled_by_user``: the user's opt-in; while false the station makes no request at all.
    - ``base_url``: the site (a 127.0.0.1 server in tests).
    - ``contact``: an e-mail or URL put in the User-Agent so the site can reach whoever runs it.
    - ``user_agent``: replaces the whole User-Agent (its product token is used for robots.txt).
    - ``respect_robots``: fetch ``/robots.txt`` once and never request a path it disallows.
    - ``min_score`` / ``ambiguity_margin``: the best card must score at least ``min_score`` and
      beat the next different person by more than ``ambiguity_margin``.
    - ``request_interval``: seconds between two requests of this station (on top of the step's
      rate limit, which counts calls, each of which makes two requests).
    - ``request_timeout``: seconds per HTTP request.
    - ``block_cooldown``: after a captcha / "Access Denied" page, seconds during which the station
      sends no request at all (each call fails ``blocked`` at once). The core's breaker also opens
      at the first block page; the cooldown still holds when the breaker is off or reset by hand.
    - ``max_phones``: phones read from a detail page (the rest are ignored: bounded work and field).
    - ``robots_retry_after``: after robots.txt answered 5xx (everything disallowed, RFC 9309),
      seconds before it is asked again.
    - ``max_response_bytes``: cap on a page (default 5 MiB); a larger page is a permanent failure.
    """

    model_config = SettingsConfigDict(env_prefix="WAYSTATION_PEOPLESEARCH_", extra="forbid", frozen=True,
                                      env_ignore_empty=True)

    enabled_by_user: bool = False
    base_url: str = "https://www.truepeoplesearch.com"
    contact: str = ""
    user_agent: str | None = None
    respect_robots: bool = True
    min_score: float = Field(default=0.7, ge=0, le=1)
    ambiguity_margin: float = Field(default=0.05, ge=0, le=1)
    request_interval: float = Field(default=2.0, ge=0)
    request_timeout: float = Field(default=20.0, gt=0)
    block_cooldown: float = Field(default=900.0, ge=0)
    max_phones: int = Field(default=50, ge=1, le=500)
    robots_retry_after: float = Field(default=300.0, ge=0)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL, not {value!r}")
        return value.rstrip("/")

    def agent(self) -> str:
        """The User-Agent header sent with every request."""
        if self.user_agent:
            return self.user_agent
        contact = f"; contact: {self.contact}" if self.contact else ""
        return f"waystation-peoplesearch/{__version__} (waystation lead enrichment{contact})"

    def robots_token(self) -> str:
        """The product token robots.txt groups are matched against."""
        return self.agent().split("/", 1)[0].split()[0] or "waystation"


def _misses(reason: str) -> dict[str, str]:
    return dict.fromkeys(PROVIDED, reason)


def miss(reason: str) -> Outcome:
    """A reasoned miss: no field, the reason kept for every field and as the step's reason."""
    return Outcome({}, cost=0.0, reason=reason, misses=_misses(reason))


def order_phones(phones: list[Phone]) -> list[Phone]:
    """Possible primary phone first, then wireless, VoIP, landline; most recently reported first."""
    by_recency = sorted(phones, key=lambda p: p.last_reported or "", reverse=True)
    return sorted(by_recency, key=lambda p: (not p.primary, _TYPE_RANK.get(p.type or "", 3)))


def _age(value: Any) -> int | None:
    try:
        return int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None


class TruePeopleSearchStation(Station):
    """TruePeopleSearch look-up: best result card for the lead, then its detail page (free, opt-in)."""

    name: ClassVar[str] = "TruePeopleSearchStation"
    requires: ClassVar[tuple[str, ...]] = ("first_name", "last_name")
    optional: ClassVar[tuple[str, ...]] = ("middle_name", "city", "state", "zipcode", "age")
    provides: ClassVar[dict[str, Any]] = {
        "phone": str,
        "phones": list[dict[str, Any]],
        "age": int,
        "current_address": str,
    }
    cost: ClassVar[float] = 0.0
    paid: ClassVar[bool | None] = False
    timeout: ClassVar[float | None] = 120.0
    retry: ClassVar[RetryPolicy] = RetryPolicy(
        max_attempts=3, base_delay=5.0, max_delay=120.0,
        retry_on=("timeout", "connection", "throttled", "server_error", "transient"),
    )
    breaker: ClassVar[BreakerPolicy | None] = BreakerPolicy(failure_threshold=3, reset_after=900.0)
    rate_limit: ClassVar[RateLimit | None] = RateLimit(per_second=0.5, concurrent=1)
    Settings: ClassVar[type[StationSettings]] = PeopleSearchSettings

    def __init__(self, settings: StationSettings | None = None) -> None:
        super().__init__(settings)
        self._http: VendorClient | None = None
        self._robots: RobotFileParser | None = None
        self._robots_down: tuple[float, str] | None = None  # (monotonic time, why) robots.txt was unreachable
        self._robots_lock = asyncio.Lock()
        self._pace_lock = asyncio.Lock()
        self._last_request = float("-inf")
        self._crawl_delay = 0.0
        self._blocked: tuple[float, str] | None = None  # (monotonic time, why) of the last block page

    @property
    def cfg(self) -> PeopleSearchSettings:
        """The station's settings, typed."""
        return cast(PeopleSearchSettings, self.settings)

    async def open(self) -> None:
        """Take the process-wide client (no request is made here)."""
        from waystation.http import VendorClient

        cfg = self.cfg
        self._http = VendorClient(
            self.name, cfg.base_url, vendor="TruePeopleSearch", max_bytes=cfg.max_response_bytes,
            timeout=cfg.request_timeout, max_connections=cfg.max_connections, follow_redirects=True,
            headers={"User-Agent": cfg.agent(), "Accept": "text/html,application/xhtml+xml",
                     "Accept-Language": "en-US,en;q=0.8"})
        await self._http.open()

    async def close(self) -> None:
        """Give the shared client back."""
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    # -- HTTP ---------------------------------------------------------------------------------

    async def _pace(self) -> None:
        interval = max(self.cfg.request_interval, self._crawl_delay)
        async with self._pace_lock:
            wait = self._last_request + interval - time.monotonic()
            if wait > 0:
                await _sleep(wait)
            self._last_request = time.monotonic()

    async def _get(self, path_and_query: str, what: str) -> str | None:
        """GET a page of the site; its text, or ``None`` on 404. Raises the step errors."""
        from waystation_peoplesearch.parse import blocked_reason

        if self._http is None:
            await self.open()
        assert self._http is not None
        if self._blocked is not None:
            since = time.monotonic() - self._blocked[0]
            if since < self.cfg.block_cooldown:
                raise BlockedError(f"TruePeopleSearch blocked this client {since:.0f} s ago ({self._blocked[1]}); "
                                   f"no request for {self.cfg.block_cooldown:g} s (block_cooldown)")
            self._blocked = None
        await self._pace()
        response = await self._http.get(self.cfg.base_url + path_and_query)
        status = response.status
        ctype = response.content_type
        text = response.text() if ("html" in ctype or "text" in ctype or not ctype) else ""
        blocked = await asyncio.to_thread(blocked_reason, text, urlsplit(response.url).path) if text else None
        if blocked is None and status in (401, 403):
            blocked = f"HTTP {status}"
        if blocked:
            self._blocked = (time.monotonic(), blocked)
            raise BlockedError(f"TruePeopleSearch refused the {what} request ({blocked}); not retried: "
                               "lower the rate limit or stop using this station")
        if status == 404:
            return None
        err = response.error(detail=what)
        if err is not None:
            raise err
        return text or response.text()

    async def _disallowed(self, path: str) -> str | None:
        """Why robots.txt forbids ``path`` (``None``: allowed, or robots are not respected)."""
        if not self.cfg.respect_robots:
            return None
        async with self._robots_lock:
            if self._robots_down is not None and \
                    time.monotonic() - self._robots_down[0] >= self.cfg.robots_retry_after:
                self._robots_down, self._robots = None, None
            if self._robots is None and self._robots_down is None:
                self._robots = await self._fetch_robots()
        where = urlsplit(self.cfg.base_url).netloc
        if self._robots_down is not None:
            return (f"robots.txt of {where} is unreachable ({self._robots_down[1]}): RFC 9309 says every path "
                    f"is disallowed; asked again after {self.cfg.robots_retry_after:g} s")
        assert self._robots is not None
        token = self.cfg.robots_token()
        # robots.txt rules are relative to the site root: match the path under base_url
        if self._robots.can_fetch(token, path):
            return None
        return f"robots.txt of {where} disallows {path.split('?')[0]} for {token}"

    async def _fetch_robots(self) -> RobotFileParser | None:
        """robots.txt by RFC 9309: 2xx its rules; 4xx no rules (allow all); 5xx or a network
        failure: unreachable (disallow all, remembered in ``_robots_down``)."""
        from waystation.http import ResponseTooLarge

        if self._http is None:
            await self.open()
        assert self._http is not None
        rp = RobotFileParser()
        await self._pace()
        try:
            response = await self._http.get(self.cfg.base_url + "/robots.txt")
        except ResponseTooLarge:
            rp.parse([])  # RFC 9309: at least 500 KiB must be parsed; a larger file is not ours to read
            return rp
        except StepError as exc:  # timeouts, connection failures, a redirect off the site
            self._robots_down = (time.monotonic(), type(exc).__name__)
            return None
        if response.status >= 500:
            self._robots_down = (time.monotonic(), f"HTTP {response.status}")
            return None
        if 400 <= response.status < 500:
            rp.parse([])  # "unavailable": no rules, everything allowed
            return rp
        rp.parse(response.text().splitlines())
        delay = rp.crawl_delay(self.cfg.robots_token())
        if delay is not None:
            self._crawl_delay = float(delay)
        return rp

    # -- the step -----------------------------------------------------------------------------

    async def process(self, ctx: StepContext) -> Outcome:
        """Search the lead's name and place, pick the best card, read its detail page."""
        from waystation_peoplesearch.match import Wanted, rank
        from waystation_peoplesearch.parse import LayoutError, parse_detail, parse_results

        cfg = self.cfg
        if not cfg.enabled_by_user:
            return miss("TruePeopleSearch is off until the user opts in (settings: enabled_by_user: true, "
                        "or WAYSTATION_PEOPLESEARCH_ENABLED_BY_USER=true); no request was made")
        want = Wanted(
            first_name=str(ctx.get("first_name", "")), last_name=str(ctx.get("last_name", "")),
            middle_name=ctx.get("middle_name"), city=ctx.get("city"),
            state=(str(ctx.get("state")).upper() if ctx.get("state") else None), age=_age(ctx.get("age")),
        )
        place = (f"{want.city}, {want.state}" if want.city and want.state
                 else ctx.get("zipcode") or want.state)
        query = "/results?name=" + quote(f"{want.first_name} {want.last_name}", safe="")
        if place:
            query += "&citystatezip=" + quote(str(place), safe="")
        if (why := await self._disallowed(query)) is not None:
            return miss(why)
        html = await self._get(query, "results page")
        if html is None:
            return miss("results page not found (HTTP 404)")
        try:
            cards = await asyncio.to_thread(parse_results, html)
        except LayoutError as exc:
            raise PermanentError(f"TruePeopleSearch results page: {exc}") from None
        if not cards:
            return miss(f"no records for this name{' in ' + str(place) if place else ''}")
        ranked = rank(cards, want)
        if not ranked:
            return miss(f"none of the {len(cards)} result cards has the last name {want.last_name!r}")
        best = ranked[0]
        if best.score < cfg.min_score:
            return miss(f"best of {len(cards)} cards scored {best.score:.2f} < min_score {cfg.min_score:.2f} "
                        f"({_parts(best.parts)})")
        rival = next((s for s in ranked[1:] if s.card.person_id != best.card.person_id), None)
        if rival is not None and best.score - rival.score <= cfg.ambiguity_margin:
            return miss(f"ambiguous: two people scored {best.score:.2f} and {rival.score:.2f}")
        link = urlsplit(best.card.link)
        if (link.netloc and link.netloc != urlsplit(cfg.base_url).netloc) \
                or not link.path.startswith("/find/person/"):
            raise PermanentError(f"TruePeopleSearch card links off the person pages: {link.path[:60]!r}")
        if (why := await self._disallowed(link.path)) is not None:
            return miss(why)
        html = await self._get(link.path, f"detail page {link.path}")
        if html is None:
            return miss(f"detail page {link.path} not found (HTTP 404)")
        try:
            detail = await asyncio.to_thread(parse_detail, html, cfg.max_phones)
        except LayoutError as exc:  # pragma: no cover - parse_detail returns None instead
            raise PermanentError(str(exc)) from None
        if detail is None:
            raise PermanentError(f"TruePeopleSearch detail page {link.path} has no #personDetails: the "
                                 "site's layout may have changed")
        return self._outcome(detail, best.score, best.parts, best.card.age, want)

    def _outcome(self, detail: Detail, score: float, parts: dict[str, float], card_age: int | None,
                 want: Any) -> Outcome:
        from waystation_peoplesearch.match import name_score

        if name_score(f"{detail.first_name} {detail.last_name}", want) is None:
            return miss(f"detail page is of {detail.first_name} {detail.last_name}, not the lead's last name")
        phones = order_phones(detail.phones)
        fields: dict[str, Any] = {
            "phone": phones[0].number if phones else None,
            "phones": [p.as_dict() for p in phones] or None,
            "age": detail.age if detail.age is not None else card_age,
            "current_address": detail.address or None,
        }
        misses = {k: "not on the detail page" for k, v in fields.items() if v is None}
        return Outcome(fields, cost=0.0, misses=misses,
                       reason=f"matched with score {score:.2f} ({_parts(parts)})")


def _parts(parts: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
