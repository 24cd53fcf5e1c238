"""ReassignedNumbersStation: the FCC Reassigned Numbers Database (RND).

For a number and a date (the date the lead gave prior express consent), the RND says whether the
number has been permanently disconnected since that date: ``yes`` (it may now belong to someone
else — the consent no longer holds), ``no``, or ``no data``. A caller that checked the most recent
RND data and got ``no`` has a safe harbor for calling a reassigned number (47 CFR 64.1200(m)).

**The request/response shape is modelled on the RND's documented behaviour (one query = a
10-digit number and a date; three answers) and was not checked against the live API
specification in this session**: the base URL, the path and the key names are settings/constants
you may have to adjust for your RND account.

Modelled exchange: ``POST {base_url}/query`` with ``{"tn": "2125550123", "date": "2024-06-01"}``
and ``Authorization: Bearer <token>``; answer ``{"tn": ..., "date": ..., "result": "yes" | "no" |
"no data", "requestId": "..."}``. 401/403: bad token; 402: no query credit left; 429: throttled.

Answers are cached per (number, date) in a SQLite file for ``evidence_days``: a lead enriched again
is not queried (nor billed) twice. Suppressed people never reach this station (the core's
suppression screen runs before it).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from waystation import (
    AuthError,
    BreakerPolicy,
    Outcome,
    PermanentError,
    RateLimit,
    RetryPolicy,
    Station,
    StationSettings,
    StepContext,
)
from waystation.dial.evidence import EVIDENCE_FIELD, expires_after, iso, parse_time, utcnow
from waystation.dial.evidence import add as add_evidence
from waystation.dial.evidence import make as make_evidence
from waystation.http import VendorSettings

if TYPE_CHECKING:
    from waystation.http import VendorClient

#: The RND's API host (modelled; a route may allow another with ``allow_hosts``).
VENDOR_HOSTS = ("api.reassigned.us",)

ANSWERS = {"yes": "yes", "no": "no", "no data": "no_data", "no_data": "no_data", "nodata": "no_data"}
_CACHE_SCHEMA = """
CREATE TABLE IF NOT EXISTS rnd_answers (
    tn TEXT NOT NULL,
    date TEXT NOT NULL,
    result TEXT NOT NULL,
    request_id TEXT,
    queried_at TEXT NOT NULL,
    PRIMARY KEY (tn, date)
) WITHOUT ROWID;
"""


class RNDSettings(VendorSettings):
    """Settings of :class:`ReassignedNumbersStation` (token from ``FCC_RND_TOKEN``; the rest also
    from ``WAYSTATION_RND_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix="WAYSTATION_RND_", extra="forbid", frozen=True,
                                      populate_by_name=True, env_ignore_empty=True)

    token: SecretStr | None = Field(default=None, validation_alias="FCC_RND_TOKEN", description="RND API token.")
    base_url: str = Field(default="https://api.reassigned.us/v1",
                          description="API base URL (modelled, check it against your RND account; tests: 127.0.0.1).")
    price: float = Field(gt=0, description="USD per query under your RND subscription (required; reserved "
                                           "before each query).")
    consent_field: str = Field(default="consent_date", min_length=1, description="The lead field with the date "
                                                                                  "consent was given.")
    evidence_days: float = Field(default=31, gt=0,
                                 description="Days an answer stays valid (as evidence and in the cache).")
    cache: Path | None = Field(default=Path(".waystation/rnd-cache.sqlite"),
                               description="SQLite cache of answers per (number, date); null: no cache.")


class ReassignedNumbersStation(Station):
    """Ask the FCC Reassigned Numbers Database whether the lead's phone was permanently
    disconnected since its consent date (``consent_date``, or the ``consent_field`` setting).

    Requires ``phone``; provides ``reassigned`` (``yes`` / ``no`` / ``no_data``) and appends a
    ``reassigned`` evidence item (vendor ``fcc-rnd``, its request id, the date queried) to
    ``dial_evidence``. A lead without a consent date is a miss (no query, no cost). Paid per query
    (``price``); answers are cached per (number, date). Its verdict matters (a ``yes`` makes the
    dial verdict ``no``), so run it with ``on_error: fail``: a query that could not be made never
    counts as a ``no``.
    """

    name = "ReassignedNumbersStation"
    requires = ("phone",)
    optional = ("consent_date", "phone_valid", EVIDENCE_FIELD)
    provides = {"reassigned": str, EVIDENCE_FIELD: list[dict[str, Any]]}
    cost = 0.0
    paid = True
    gate = True  # its answer decides the verdict: a query that could not be made holds the lead
    vendor_hosts: ClassVar[tuple[str, ...]] = VENDOR_HOSTS
    timeout = 30.0
    retry = RetryPolicy(max_attempts=3, base_delay=0.5)
    breaker = BreakerPolicy(failure_threshold=5, reset_after=60.0)
    rate_limit = RateLimit(per_second=10)
    Settings = RNDSettings

    def __init__(self, settings: StationSettings | None = None) -> None:
        super().__init__(settings)
        self._http: VendorClient | None = None
        self._cache: sqlite3.Connection | None = None

    @classmethod
    def declared_cost(cls, settings: StationSettings) -> float:
        """Reserve the plan's price per query before each call."""
        assert isinstance(settings, RNDSettings)
        return settings.price

    @property
    def config(self) -> RNDSettings:
        """The settings, typed."""
        assert isinstance(self.settings, RNDSettings)
        return self.settings

    async def open(self) -> None:
        """Take the process-wide pooled client (the token goes only to the RND host, over https)
        and open the cache."""
        from waystation.http import Credentials, VendorClient

        cfg = self.config
        if self._http is None:
            self._http = VendorClient(
                self.name, cfg.base_url, vendor="RND", hosts=self.vendor_hosts,
                credentials=Credentials(headers={"Authorization": cfg.token},
                                        header_format={"Authorization": "Bearer {}"}),
                allow_hosts=cfg.allow_hosts, max_bytes=cfg.max_response_bytes, timeout=cfg.http_timeout,
                max_connections=cfg.max_connections, headers={"User-Agent": "waystation-dnc"})
            await self._http.open()
        if self._cache is None and self.config.cache is not None:
            self.config.cache.parent.mkdir(parents=True, exist_ok=True)
            self._cache = sqlite3.connect(self.config.cache, isolation_level=None, check_same_thread=False)
            self._cache.execute("PRAGMA journal_mode=WAL")
            self._cache.executescript(_CACHE_SCHEMA)

    async def close(self) -> None:
        """Give the shared client back and close the cache."""
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def _cached(self, tn: str, day: str) -> tuple[str, str | None, datetime] | None:
        if self._cache is None:
            return None
        row = self._cache.execute("SELECT result, request_id, queried_at FROM rnd_answers WHERE tn = ? AND date = ?",
                                  (tn, day)).fetchone()
        if row is None:
            return None
        queried = parse_time(row[2])
        if expires_after(queried, self.config.evidence_days) <= utcnow():
            return None
        return row[0], row[1], queried

    def _remember(self, tn: str, day: str, result: str, request_id: str | None, queried: datetime) -> None:
        if self._cache is not None:
            self._cache.execute("INSERT OR REPLACE INTO rnd_answers (tn, date, result, request_id, queried_at) "
                                "VALUES (?, ?, ?, ?, ?)", (tn, day, result, request_id, iso(queried)))

    async def process(self, ctx: StepContext) -> Outcome:
        """One query for (phone, consent date), or the cached answer."""
        from waystation_dnc.lists import scrub_target

        cfg = self.config
        number = scrub_target(ctx.data)
        if isinstance(number, str):
            return Outcome(misses={"reassigned": number})
        raw = ctx.data.get(cfg.consent_field)
        if raw in (None, ""):
            return Outcome(misses={"reassigned": f"no {cfg.consent_field}: the RND needs the date consent was given"})
        try:
            day = parse_time(str(raw)).date()
        except ValueError:
            return Outcome(misses={"reassigned": f"{cfg.consent_field} is not a date: {str(raw)[:30]!r}"})
        if day >= datetime.now(UTC).date():
            return Outcome(misses={"reassigned": f"{cfg.consent_field} is not in the past"})
        tn, date_text = f"{number:010d}", day.isoformat()
        if self._http is None:
            await self.open()
        hit = await asyncio.to_thread(self._cached, tn, date_text)
        cost = 0.0
        if hit is not None:
            result, request_id, queried = hit
        else:
            result, request_id = await self._query(tn, date_text)
            queried, cost = utcnow(), cfg.price
            await asyncio.to_thread(self._remember, tn, date_text, result, request_id, queried)
        item = make_evidence("reassigned", result, station=self.name, phone=tn, checked_at=queried,
                             expires_at=expires_after(queried, cfg.evidence_days), vendor="fcc-rnd",
                             request_id=request_id, consent_date=date_text, cached=hit is not None or None)
        return Outcome({"reassigned": result, EVIDENCE_FIELD: add_evidence(ctx.data.get(EVIDENCE_FIELD), [item])},
                       cost=cost)

    async def _query(self, tn: str, day: str) -> tuple[str, str | None]:
        cfg = self.config
        if cfg.token is None or not cfg.token.get_secret_value():
            raise AuthError("no RND token: set FCC_RND_TOKEN")
        assert self._http is not None
        self._http.check_credentials()
        resp = await self._http.post("query", json={"tn": tn, "date": day})
        resp.raise_for_status(auth_hint="check FCC_RND_TOKEN")
        try:
            body: Any = json.loads(resp.text())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise PermanentError(f"the RND answered something that is not a JSON object: {resp.text()[:80]!r}")
        answer = ANSWERS.get(str(body.get("result", "")).strip().lower())
        if answer is None:
            raise PermanentError(f"the RND answered result={body.get('result')!r} (expected yes, no or no data)")
        request_id = body.get("requestId") or body.get("request_id") or resp.headers.get("x-request-id")
        return answer, str(request_id) if request_id else None
