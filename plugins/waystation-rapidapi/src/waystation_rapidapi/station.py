"""SkipTracingStation: RapidAPI "Skip Tracing Working API" (the seed's ``RapidApiStation`` /
``skip_trace()``).

A lookup is two calls, two costs: a search (``/search/bynameaddress`` with name + city/state/ZIP;
``/search/byphone`` or ``/search/byemail`` when that is what the lead has; ``/search/byname`` as
a last resort) returns candidates only; the best candidate (name, location and age agreement,
scored 0..1) is fetched with ``/search/detailsbyID?peo_id=``. Both prices are reserved before the
first call (the declared ``cost`` is search + details); the actual cost is the calls made.

``detailsbyID`` is flaky ("peo_id Not Valid", then success): that call alone is retried inside
the station (``details_attempts``), never re-running the search. When the engine retries the
step after a transient error (a 5xx on the details call, say), the candidate already found for
the lead is reused, so a search is not bought twice.

Two candidates that score within ``tie_margin`` of each other (different people) are ambiguous:
a reasoned miss, and no details are bought. A search by phone or e-mail only writes the record
onto the lead when the record really carries that phone or e-mail.

HTTP goes through :mod:`waystation.http` (imported when the station opens): the process-wide
pooled client, capped bodies, the key only in ``X-RapidAPI-Key`` over https to the RapidAPI host
(or a host the route allows with ``allow_hosts``), statuses mapped to the core's errors (a 429
carries the gateway's ``x-ratelimit-requests-reset`` wait).
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict
from waystation import (
    AuthError,
    BreakerPolicy,
    Outcome,
    RateLimit,
    RetryPolicy,
    ServerError,
    Station,
    StationSettings,
    StepContext,
    StepError,
)
from waystation.http import VendorSettings

from waystation_rapidapi.models import Candidate, DetailsResponse, PhoneDetail, SearchResponse

if TYPE_CHECKING:
    from waystation.http import VendorClient, VendorResponse

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger("waystation.rapidapi")

HOST = "skip-tracing-working-api.p.rapidapi.com"
#: No public per-call price exists (RapidAPI plans are monthly quotas + overage): a setting.
SEARCH_PRICE = 0.01
DETAILS_PRICE = 0.01

PhoneEntry = dict[str, str | None]

_NOT_VALID = re.compile(r"peo_?id\s+not\s+valid", re.I)
_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                       "nov", "dec"), start=1)}
_TYPE_RANK = {"wireless": 0, "voip": 1, "landline": 2}


class SkipTracingSettings(VendorSettings):
    """Settings of :class:`SkipTracingStation` (route ``settings:`` or the environment).

    The key comes from ``RAPIDAPI_KEY`` (or ``api_key:`` in the route, not recommended); every
    other setting also reads ``WAYSTATION_RAPIDAPI_<NAME>``.
    """

    model_config = SettingsConfigDict(
        env_prefix="WAYSTATION_RAPIDAPI_", extra="forbid", frozen=True, populate_by_name=True,
        env_ignore_empty=True,
    )

    api_key: SecretStr | None = Field(default=None, validation_alias="RAPIDAPI_KEY",
                                      description="RapidAPI key, sent only as the X-RapidAPI-Key header.")
    base_url: str = Field(default=f"https://{HOST}", description="API base URL (tests: 127.0.0.1).")
    host: str = Field(default=HOST, description="The X-RapidAPI-Host header value.")
    search_price: float = Field(default=SEARCH_PRICE, ge=0, description="USD per search call.")
    details_price: float = Field(default=DETAILS_PRICE, ge=0, description="USD per details call.")
    details_retry_billed: bool = Field(
        default=False, description="Charge details_price for every details call, also the retried "
                                   "'peo_id Not Valid' ones (raise the step's cost: to match).")
    min_match_score: float = Field(default=0.6, ge=0, le=1,
                                   description="The best candidate must score at least this.")
    tie_margin: float = Field(default=0.05, ge=0, le=1,
                              description="A second person scoring within this of the best makes the search "
                                          "ambiguous: a reasoned miss, no details bought.")
    max_candidates: int = Field(default=50, ge=1, le=1000,
                                description="Candidates of a search that are scored (the rest are ignored).")
    max_phones: int = Field(default=50, ge=1, le=1000, description="Phones of a record that are kept.")
    details_attempts: int = Field(default=4, ge=1, le=10,
                                  description="Calls of detailsbyID while it answers 'peo_id Not Valid'.")
    details_retry_delay: float = Field(default=0.5, ge=0, description="First wait between those calls (s).")
    stale_after_years: int = Field(default=5, ge=0,
                                   description="A phone last reported longer ago ranks after current ones.")
    http_timeout: float = Field(default=15.0, gt=0, description="Seconds per HTTP request.")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")


# ----------------------------------------------------------------------------- helpers


def to_e164(raw: str | None) -> str | None:
    """A US phone as the vendor prints it (``(303) 555-0100``) in E.164, or ``None``."""
    if not raw:
        return None
    digits = re.sub(r"\D", "", raw)
    if raw.strip().startswith("+") and 8 <= len(digits) <= 15:
        return "+" + digits
    if len(digits) == 10 and digits[0] not in "01":
        return "+1" + digits
    if len(digits) == 11 and digits[0] == "1":
        return "+" + digits
    return None


def _national(raw: str) -> str | None:
    e164 = to_e164(raw)
    return e164[2:] if e164 and e164.startswith("+1") and len(e164) == 12 else None


def parse_last_reported(text: str | None) -> str | None:
    """``"Last reported Jan 2026"`` → ``"2026-01"``; a bare year → ``"2026"``; else ``None``."""
    if not text:
        return None
    m = re.search(r"([A-Za-z]{3})[a-z]*\.?\s+(\d{4})", text)
    if m and m.group(1).lower() in _MONTHS:
        return f"{m.group(2)}-{_MONTHS[m.group(1).lower()]:02d}"
    m = re.search(r"\b(19|20)\d{2}\b", text)
    return m.group(0) if m else None


def _phone_type(text: str | None) -> str | None:
    if not text:
        return None
    low = text.strip().lower()
    if low in ("wireless", "mobile", "cell"):
        return "wireless"
    if low in ("landline", "land line", "fixed line"):
        return "landline"
    if low == "voip":
        return "voip"
    return low or None


def _tokens(text: str | None) -> list[str]:
    return [t for t in re.split(r"[^a-z']+", (text or "").lower().replace("'", "")) if t]


def _norm(text: str | None) -> str:
    return " ".join(_tokens(text))


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    m = re.search(r"\d{1,3}", str(text))
    return int(m.group(0)) if m else None


@dataclass(frozen=True)
class LeadKeys:
    """What the station searches and scores with, read from the lead."""

    first: str | None
    last: str | None
    full: str | None
    city: str | None
    state: str | None
    zipcode: str | None
    phone: str | None
    email: str | None
    age: int | None

    def citystatezip(self) -> str | None:
        """``"Denver, CO 80201"`` from what the lead has (any part may be missing)."""
        place = ", ".join(p for p in (self.city, self.state) if p)
        text = " ".join(p for p in (place, self.zipcode) if p)
        return text or None


def _score_name(keys: LeadKeys, candidate: str | None) -> float | None:
    want = _tokens(keys.full) if keys.full else _tokens(f"{keys.first or ''} {keys.last or ''}")
    have = _tokens(candidate)
    if not want or not have:
        return None
    first = _tokens(keys.first)[0] if keys.first and _tokens(keys.first) else want[0]
    last = _tokens(keys.last)[-1] if keys.last and _tokens(keys.last) else want[-1]
    last_score = 1.0 if last == have[-1] else (0.7 if last in have else 0.0)
    if first == have[0]:
        first_score = 1.0
    elif have[0].startswith(first) or first.startswith(have[0]):
        first_score = 0.6          # Jon / Jonathan, J / John
    elif first in have:
        first_score = 0.6          # goes by the middle name
    else:
        first_score = 0.0
    return 0.5 * last_score + 0.5 * first_score


def _score_place(keys: LeadKeys, lives_in: str | None) -> float | None:
    if not (keys.city or keys.state) or not lives_in:
        return None
    city, _, state = lives_in.rpartition(",")
    city_n, state_n = _norm(city), _norm(state)
    parts: list[tuple[float, float]] = []
    if keys.state:
        parts.append((0.4, 1.0 if _norm(keys.state) == state_n else 0.0))
    if keys.city:
        parts.append((0.6, 1.0 if _norm(keys.city) == city_n else 0.0))
    total = sum(w for w, _ in parts)
    return sum(w * s for w, s in parts) / total if total else None


def _score_age(keys: LeadKeys, age: str | None) -> float | None:
    have = _int(age)
    if keys.age is None or have is None:
        return None
    diff = abs(keys.age - have)
    return 1.0 if diff <= 2 else 0.5 if diff <= 5 else 0.0


def score_candidate(keys: LeadKeys, candidate: Candidate, by_identifier: bool) -> float:
    """How well ``candidate`` agrees with the lead, 0..1: a weighted mean of name (0.5), location
    (0.3) and age (0.2) agreement over the signals both sides have; a search by phone or e-mail
    adds the exact identifier match (0.5)."""
    signals: list[tuple[float, float | None]] = [
        (0.5, _score_name(keys, candidate.name)),
        (0.3, _score_place(keys, candidate.lives_in)),
        (0.2, _score_age(keys, candidate.age)),
        (0.5, 1.0 if by_identifier else None),
    ]
    used = [(w, s) for w, s in signals if s is not None]
    if not used:
        return 0.0
    return round(sum(w * s for w, s in used) / sum(w for w, _ in used), 3)


def rank_phones(details: DetailsResponse, now: dt.date, stale_after_years: int) -> list[PhoneEntry]:
    """The record's phones as ``{"number", "type", "last_reported", "provider"}`` dicts, best
    first: current before stale (``stale_after_years``), wireless before VoIP before landline,
    most recently reported first; the record's primary ``Telephone`` wins ties."""
    primary = to_e164(details.person[0].telephone) if details.person else None
    seen: dict[str, PhoneEntry] = {}
    items: list[PhoneDetail] = list(details.phones)
    if primary and not any(to_e164(p.phone_number) == primary for p in items):
        items.append(PhoneDetail(phone_number=primary))
    for p in items:
        number = to_e164(p.phone_number)
        if number is None or number in seen:
            continue
        seen[number] = {"number": number, "type": _phone_type(p.phone_type),
                        "last_reported": parse_last_reported(p.last_reported), "provider": p.provider or None}
    cutoff = f"{now.year - stale_after_years:04d}-{now.month:02d}"

    def key(entry: PhoneEntry) -> tuple[int, int, str, int]:
        reported = entry["last_reported"] or ""
        stale = 1 if (not reported or reported < cutoff[: len(reported)]) else 0
        inverted = "".join(chr(0x39 - ord(c) + 0x30) if c.isdigit() else c for c in reported) or "~"
        rank = _TYPE_RANK.get(entry["type"] or "", 3)
        return (stale, rank, inverted, 0 if entry["number"] == primary else 1)

    return sorted(seen.values(), key=key)


def _emails(details: DetailsResponse) -> list[str]:
    out: list[str] = []
    for item in details.emails:
        values = [item] if isinstance(item, str) else list(item.values()) if isinstance(item, dict) else []
        for v in values:
            if isinstance(v, str) and re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", v.strip()):
                low = v.strip().lower()
                if low not in out:
                    out.append(low)
    return out


def _address(details: DetailsResponse) -> str | None:
    for a in details.current_addresses:
        def pick(*names: str, a: dict[str, Any] = a) -> str:
            for n in names:
                v = a.get(n)
                if isinstance(v, str | int) and str(v).strip():
                    return str(v).strip()
            return ""
        street = pick("street_address", "streetAddress")
        city = pick("address_locality", "addressLocality")
        region = pick("address_region", "addressRegion")
        postal = pick("postal_code", "postalCode")
        tail = " ".join(p for p in (region, postal) if p)
        text = ", ".join(p for p in (street, city, tail) if p)
        if text:
            return text
    return None


class _NotValidYet(Exception):
    """detailsbyID answered "peo_id Not Valid" (retried inside the station)."""


@dataclass
class _Progress:
    """What an earlier engine attempt for the same lead and step already bought."""

    candidate: Candidate
    score: float
    endpoint: str
    spent: float


# ----------------------------------------------------------------------------- the station


class SkipTracingStation(Station):
    """Finds a person's phones, e-mails, address and age through the RapidAPI "Skip Tracing
    Working API": search → best candidate (``match_score``) → details.

    Needs a name (with city/state/ZIP when the lead has them), or a phone, or an e-mail; a lead
    with none of them is a reasoned miss at no cost.
    """

    name = "SkipTracingStation"
    required_settings = ("api_key",)  # refused before any lead runs when RAPIDAPI_KEY is not set
    requires = ()
    optional = ("first_name", "last_name", "full_name", "name", "city", "state", "zipcode", "zip", "phone",
                "email", "age")
    provides = MappingProxyType({
        "phone": str,
        "phones": list[dict[str, str | None]],
        "emails": list[str],
        "current_address": str,
        "age": int,
        "match_score": float,
    })
    cost = SEARCH_PRICE + DETAILS_PRICE
    paid = True
    vendor_hosts: ClassVar[tuple[str, ...]] = (HOST,)
    timeout = 60.0
    retry = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=30.0)
    breaker = BreakerPolicy(failure_threshold=5, reset_after=60.0)
    rate_limit = RateLimit(per_second=2.0, concurrent=2)
    Settings = SkipTracingSettings

    settings: SkipTracingSettings

    #: How many leads' half-done lookups are remembered between engine attempts.
    progress_limit = 1024

    def __init__(self, settings: SkipTracingSettings | None = None) -> None:
        super().__init__(settings)
        self._http: VendorClient | None = None
        self._progress: collections.OrderedDict[tuple[str | None, str, str], _Progress] = (
            collections.OrderedDict())

    @classmethod
    def declared_cost(cls, settings: StationSettings) -> float:
        """Reserve both calls (search + details) at the configured prices before the first one."""
        assert isinstance(settings, SkipTracingSettings)
        return settings.search_price + settings.details_price

    async def open(self) -> None:
        """Take the process-wide client (waystation.http is imported here, not at plugin import)."""
        from waystation.http import Credentials, VendorClient

        s = self.settings
        self._http = VendorClient(
            self.name, s.base_url, vendor="RapidAPI", hosts=self.vendor_hosts, allow_hosts=s.allow_hosts,
            credentials=Credentials(headers={"X-RapidAPI-Key": s.api_key}), max_bytes=s.max_response_bytes,
            timeout=s.http_timeout, max_connections=s.max_connections,
            headers={"Accept": "application/json", "User-Agent": "waystation-rapidapi/0.1", "X-RapidAPI-Host": s.host})
        await self._http.open()

    async def close(self) -> None:
        """Give the shared client back."""
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    # -- reading the lead --------------------------------------------------------------------

    @staticmethod
    def _keys(ctx: StepContext) -> LeadKeys:
        def text(*names: str) -> str | None:
            for n in names:
                v = ctx.get(n)
                if isinstance(v, str | int) and str(v).strip():
                    return str(v).strip()
            return None

        first, last = text("first_name"), text("last_name")
        full = text("full_name", "name")
        if full is None and (first or last):
            full = " ".join(p for p in (first, last) if p)
        zipcode = text("zipcode", "zip")
        return LeadKeys(first=first, last=last, full=full, city=text("city"), state=text("state"),
                        zipcode=zipcode[:5] if zipcode else None, phone=text("phone"), email=text("email"),
                        age=_int(text("age")))

    @staticmethod
    def _search_plan(keys: LeadKeys) -> tuple[str, dict[str, str], bool] | None:
        """(endpoint, query, searched by an exact identifier) or ``None`` when nothing to search by."""
        place = keys.citystatezip()
        if keys.full and place:
            return "search/bynameaddress", {"name": keys.full, "citystatezip": place}, False
        national = _national(keys.phone) if keys.phone else None
        if national:
            return "search/byphone", {"phoneno": national}, True
        if keys.email:
            return "search/byemail", {"email": keys.email}, True
        if keys.full:
            return "search/byname", {"name": keys.full}, False
        return None

    # -- HTTP ---------------------------------------------------------------------------------

    def _clean(self, text: str) -> str:
        key = self.settings.api_key.get_secret_value() if self.settings.api_key is not None else ""
        return text.replace(key, "***") if key else text

    async def _get(self, path: str, params: Mapping[str, str]) -> VendorResponse:
        assert self._http is not None
        return await self._http.get(path, params=dict(params))

    def _message(self, resp: VendorResponse) -> str:
        try:
            body = resp.json()
        except ServerError:
            body = None
        if isinstance(body, dict):
            msg = body.get("message") or body.get("error") or body.get("detail")
            if isinstance(msg, str):
                return self._clean(msg)[:300]
        return self._clean(resp.text().strip())[:200] or resp.reason

    def _raise_for(self, resp: VendorResponse, path: str) -> None:
        """Map a non-200 answer (gateway or provider) to the core's errors (waystation.http)."""
        msg = self._message(resp)
        remaining = resp.headers.get("x-ratelimit-requests-remaining")
        quota = resp.status == 429 and ("quota" in msg.lower() or (
            remaining is not None and remaining.strip() in ("0", "-0")))
        resp.raise_for_status(detail=f"on /{path}: {msg}",
                              auth_hint="check RAPIDAPI_KEY and the subscription to the API", quota=quota)

    async def _search(self, endpoint: str, query: Mapping[str, str]) -> list[Candidate]:
        resp = await self._get(endpoint, query)
        if resp.status != 200:
            self._raise_for(resp, endpoint)
        parsed = await self._parse(resp, SearchResponse)
        return [c for c in parsed.people if c.person_id][: self.settings.max_candidates]

    async def _parse(self, resp: VendorResponse, model: type[M]) -> M:
        """A 200 body as ``model``; anything else the vendor sent is a (retried) server error."""
        if not isinstance(resp.json(), dict):
            raise ServerError(f"RapidAPI answered {resp.url.rsplit('/', 1)[-1]} with JSON that is not an object",
                              status=200)
        return await resp.parse(model)

    async def _details_once(self, peo_id: str) -> DetailsResponse:
        path = "search/detailsbyID"
        resp = await self._get(path, {"peo_id": peo_id})
        if resp.status not in (200, 401, 402, 403, 429) and resp.status < 500 and _NOT_VALID.search(
                resp.text()):
            raise _NotValidYet(self._message(resp))
        if resp.status != 200:
            self._raise_for(resp, path)
        details = await self._parse(resp, DetailsResponse)
        if not details.is_record:
            raise _NotValidYet(self._clean(details.message or "no person in the record"))
        return details

    async def _details(self, peo_id: str) -> tuple[DetailsResponse | None, int, str | None]:
        """detailsbyID, retried while it answers "peo_id Not Valid": (record, calls made, last complaint)."""
        import stamina

        s = self.settings
        calls = 0
        last: str | None = None
        try:
            async for attempt in stamina.retry_context(
                on=_NotValidYet, attempts=s.details_attempts, timeout=None,
                wait_initial=s.details_retry_delay, wait_max=max(s.details_retry_delay, 5.0),
            ):
                with attempt:
                    calls += 1
                    try:
                        return await self._details_once(peo_id), calls, None
                    except _NotValidYet as exc:
                        last = str(exc)
                        raise
        except _NotValidYet:
            pass
        return None, calls, last

    # -- process ------------------------------------------------------------------------------

    async def process(self, ctx: StepContext) -> Outcome:
        """Search, pick the best candidate, fetch its details; report what was found."""
        s = self.settings
        keys = self._keys(ctx)
        plan = self._search_plan(keys)
        if plan is None:
            why = "the lead has no name, phone or e-mail to search by"
            return Outcome({}, misses={"phone": why})
        if s.api_key is None or not s.api_key.get_secret_value():
            raise AuthError("no RapidAPI key: set the RAPIDAPI_KEY environment variable")
        if self._http is None:
            await self.open()
        assert self._http is not None
        self._http.check_credentials()
        endpoint, query, by_identifier = plan
        memo = (ctx.run_id, ctx.lead_id, ctx.step_id)
        progress = self._progress.get(memo)
        if progress is None:
            candidates = await self._search(endpoint, query)
            spent = s.search_price
            if not candidates:
                return Outcome({}, cost=spent, misses={"phone": f"nobody found by /{endpoint}"})
            scored = sorted(((score_candidate(keys, c, by_identifier), i, c) for i, c in enumerate(candidates)),
                            key=lambda t: (-t[0], t[1]))
            best_score, _, best = scored[0]
            if best_score < s.min_match_score:
                why = (f"best of {len(candidates)} candidate(s) from /{endpoint} scored {best_score:.3f} "
                       f"< min_match_score {s.min_match_score}")
                return Outcome({}, cost=spent, misses={"phone": why})
            rival = next((t for t in scored[1:] if t[2].person_id != best.person_id), None)
            if rival is not None and best_score - rival[0] <= s.tie_margin:
                why = (f"ambiguous: two people from /{endpoint} scored {best_score:.3f} and {rival[0]:.3f} "
                       f"(within tie_margin {s.tie_margin}); no details bought")
                return Outcome({}, cost=spent, reason=why, misses={"phone": why})
            progress = _Progress(best, best_score, endpoint, spent)
            self._progress[memo] = progress
            while len(self._progress) > self.progress_limit:
                self._progress.popitem(last=False)
        assert progress.candidate.person_id is not None
        try:
            details, calls, complaint = await self._details(progress.candidate.person_id)
        except StepError as exc:
            # the search was bought: book it now (a retry of the step reuses the candidate and
            # does not charge the search again)
            if progress.spent:
                exc.costing(exc.incurred_cost + progress.spent)
                progress.spent = 0.0
            raise
        self._progress.pop(memo, None)
        billed_calls = calls if s.details_retry_billed else min(calls, 1)
        cost = progress.spent + billed_calls * s.details_price
        if details is None:
            why = f"detailsbyID kept answering {complaint!r} ({calls} call(s))"
            return Outcome({}, cost=cost, misses={"phone": why})
        if progress.endpoint in ("search/byphone", "search/byemail"):
            wrong = self._not_the_searched_person(details, keys, progress.endpoint)
            if wrong is not None:
                return Outcome({}, cost=cost, reason=wrong, misses={"phone": wrong})
        return self._outcome(details, progress, cost)

    def _not_the_searched_person(self, details: DetailsResponse, keys: LeadKeys, endpoint: str) -> str | None:
        """Why the record a search by phone/e-mail returned is not the lead's (``None``: it is)."""
        if endpoint == "search/byphone":
            want = to_e164(keys.phone)
            have = {p["number"] for p in rank_phones(details, dt.datetime.now(dt.UTC).date(), 10_000)}
            if want is not None and want not in have:
                return (f"the record /{endpoint} returned does not carry the lead's phone "
                        f"({len(have)} phone(s) on it): not written onto the lead")
        else:
            want_mail = (keys.email or "").strip().lower()
            if want_mail and want_mail not in _emails(details):
                return (f"the record /{endpoint} returned does not carry the lead's e-mail: "
                        "not written onto the lead")
        return None

    def _outcome(self, details: DetailsResponse, progress: _Progress, cost: float) -> Outcome:
        s = self.settings
        phones = rank_phones(details, dt.datetime.now(dt.UTC).date(), s.stale_after_years)[: s.max_phones]
        emails = _emails(details)
        address = _address(details)
        age = _int(details.person[0].age if details.person else None) or _int(progress.candidate.age)
        fields: dict[str, Any] = {
            "phone": phones[0]["number"] if phones else None,
            "phones": phones or None,
            "emails": emails or None,
            "current_address": address,
            "age": age,
            "match_score": progress.score,
        }
        misses = {k: "not in the skip-tracing record" for k, v in fields.items() if v is None}
        return Outcome(fields, cost=cost, misses=misses)


class RapidApiStation(SkipTracingStation):
    """The seed's name for :class:`SkipTracingStation` (same station, same settings)."""

    name = "RapidApiStation"
