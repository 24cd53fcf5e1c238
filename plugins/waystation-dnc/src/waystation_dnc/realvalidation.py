"""RealValidationDNCStation: the paid alternative to the local store — RealValidation's DNC Lookup API.

``GET {base_url}/DNCLookup.php?phone=2125550123&token=...&output=json`` answers per number
``national_dnc``, ``state_dnc``, ``dma``, ``litigator`` as ``Y`` / ``N`` / ``?`` (``?``: their
lookup timed out) and ``iscell``; ``RESPONSECODE`` is ``OK`` or an error code, ``RESPONSEMSG`` an
(empty) object. More than about 10 calls per second is answered with HTTP 403. The token travels
in the query string (the vendor's design): it is never put in an error message or a log line.

HTTP goes through :mod:`waystation.http` (imported when the station opens): the token is attached
only over https to ``api.realvalidation.com`` (or a host the route allows with ``allow_hosts``),
answers are read capped, statuses other than the vendor's own 403 are mapped by the core.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from waystation import (
    AuthError,
    BreakerPolicy,
    Outcome,
    PermanentError,
    QuotaExhaustedError,
    RateLimit,
    RetryPolicy,
    Station,
    StationSettings,
    StepContext,
    ThrottledError,
    TransientError,
)
from waystation.http import VendorSettings, error_for_status

from waystation_dnc.lists import OnListed

if TYPE_CHECKING:
    from waystation.http import VendorClient

#: Response flag → the name reported in ``dnc_lists``.
FLAGS = {"national_dnc": "federal", "state_dnc": "state", "dma": "dma", "litigator": "litigator"}


class RealValidationSettings(VendorSettings):
    """Settings of :class:`RealValidationDNCStation`.

    The token comes from ``REALVALIDATION_TOKEN`` (or ``token:`` in the route, not recommended);
    every other setting also reads ``WAYSTATION_REALVALIDATION_<NAME>``.
    """

    model_config = SettingsConfigDict(env_prefix="WAYSTATION_REALVALIDATION_", extra="forbid", frozen=True,
                                      populate_by_name=True, env_ignore_empty=True)

    token: SecretStr | None = Field(default=None, validation_alias="REALVALIDATION_TOKEN",
                                    description="RealValidation API token.")
    base_url: str = Field(default="https://api.realvalidation.com/rpvWebService",
                          description="API base URL (tests: 127.0.0.1).")
    price: float = Field(gt=0, description="USD per lookup under your plan (required: RealValidation "
                                           "publishes no list price). It is reserved before each call.")
    lists: list[str] = Field(default_factory=lambda: list(FLAGS.values()),
                             description="Which answers count as listed: federal, state, dma, litigator.")
    on_listed: OnListed = Field(default="skip_remaining", description="Stop decision for a listed number.")
    http_timeout: float = Field(default=10.0, gt=0, description="Seconds per HTTP request.")


#: The hosts the RealValidation token may be sent to (https only).
VENDOR_HOSTS = ("api.realvalidation.com",)


class RealValidationDNCStation(Station):
    """Scrub a phone number with RealValidation's DNC Lookup API (federal, state, DMA, litigator).

    Requires ``phone``; provides ``dnc_listed`` and ``dnc_lists`` like the local
    ``DNCScrubStation`` (lists named ``federal``, ``state``, ``dma``, ``litigator``), and follows
    the same ``on_listed`` stop decision. Paid per lookup (``price``); limited to 10 calls per
    second; a ``?`` answer (the vendor's own timeout) and HTTP 403/5xx are retried.
    """

    name = "RealValidationDNCStation"
    requires = ("phone",)
    optional = ("phone_valid",)
    provides = {"dnc_listed": bool, "dnc_lists": list[str]}
    cost = 0.0
    paid = True
    gate = True
    vendor_hosts: ClassVar[tuple[str, ...]] = VENDOR_HOSTS
    timeout = 30.0
    retry = RetryPolicy(max_attempts=3, base_delay=0.5)
    breaker = BreakerPolicy(failure_threshold=5, reset_after=60.0)
    rate_limit = RateLimit(per_second=10)
    Settings = RealValidationSettings

    def __init__(self, settings: StationSettings | None = None) -> None:
        super().__init__(settings)
        self._http: VendorClient | None = None

    @classmethod
    def declared_cost(cls, settings: StationSettings) -> float:
        """Reserve the plan's price per lookup (the ``price`` setting) before each call."""
        assert isinstance(settings, RealValidationSettings)
        return settings.price

    @property
    def config(self) -> RealValidationSettings:
        """The settings, typed."""
        assert isinstance(self.settings, RealValidationSettings)
        return self.settings

    async def open(self) -> None:
        """Take the process-wide pooled client."""
        from waystation.http import Credentials, VendorClient

        cfg = self.config
        if self._http is None:
            self._http = VendorClient(
                self.name, cfg.base_url, vendor="RealValidation", hosts=self.vendor_hosts,
                credentials=Credentials(params={"token": cfg.token}), allow_hosts=cfg.allow_hosts,
                max_bytes=cfg.max_response_bytes, timeout=cfg.http_timeout, max_connections=cfg.max_connections,
                headers={"User-Agent": "waystation-dnc"})
            await self._http.open()

    async def close(self) -> None:
        """Give the shared client back."""
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def process(self, ctx: StepContext) -> Outcome:
        """One lookup for the lead's phone."""
        from waystation_dnc.lists import scrub_target

        cfg = self.config
        if cfg.token is None or not cfg.token.get_secret_value():
            raise AuthError("no RealValidation token: set REALVALIDATION_TOKEN")
        number = scrub_target(ctx.data)
        if isinstance(number, str):
            return Outcome(misses={"dnc_listed": number})
        if self._http is None:
            await self.open()
        assert self._http is not None
        self._http.check_credentials()
        resp = await self._http.get("DNCLookup.php", params={"phone": str(number), "output": "json"})
        return self._outcome(resp.status, resp.text(), number)

    def _outcome(self, status: int, text: str, number: int) -> Outcome:
        cfg = self.config
        if status == 403:
            raise ThrottledError("RealValidation answered 403 (more than 10 calls per second)")
        err = error_for_status(status, {}, vendor="RealValidation", auth_hint="check REALVALIDATION_TOKEN")
        if err is not None:
            raise err
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            lowered = text.strip().lower()
            if "unauthorized" in lowered or ("invalid" in lowered and "token" in lowered):
                raise AuthError("RealValidation refused the token (incorrect token or suspended account)")
            raise PermanentError(f"RealValidation answered something that is not a JSON object: {text[:80]!r}")
        code = str(body.get("RESPONSECODE", "")).strip()
        if code.lower() == "invalid-phone":
            return Outcome(cost=cfg.price, misses={"dnc_listed": "RealValidation: the number does not exist"})
        if code.lower() in ("unauthorized", "102"):
            raise AuthError(f"RealValidation refused the token (code {code})")
        if code.lower() in ("noaccess", "no-credits", "nocredits", "insufficient-credits"):
            raise QuotaExhaustedError(f"RealValidation: {code}")
        if code != "OK":
            raise PermanentError(f"RealValidation answered RESPONSECODE {code!r} for {number}")
        listed: list[str] = []
        for flag, list_name in FLAGS.items():
            value = str(body.get(flag, "")).strip().upper()
            if value == "?":
                raise TransientError(f"RealValidation could not check {flag} (answered '?')")
            if value == "Y" and list_name in cfg.lists:
                listed.append(list_name)
            elif value not in ("Y", "N"):
                raise PermanentError(f"RealValidation answered {flag}={body.get(flag)!r}")
        return Outcome({"dnc_listed": bool(listed), "dnc_lists": listed}, cost=cfg.price)
