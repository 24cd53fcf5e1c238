"""What the paid DNC scrub API stations share (Blacklist Alliance, DNCScrub): settings, the gate
declarations, the pooled client, the lookup skeleton.

A light module (no HTTP client is imported here): :mod:`waystation.http` is imported when a
station opens.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, SecretStr, field_validator
from waystation import AuthError, BreakerPolicy, Outcome, RateLimit, RetryPolicy, Station, StationSettings, StepContext
from waystation.dial.evidence import EVIDENCE_FIELD, LISTED, expires_after, utcnow
from waystation.dial.evidence import add as add_evidence
from waystation.dial.evidence import make as make_evidence
from waystation.http import VendorSettings

from waystation_dnc.lists import OnListed

if TYPE_CHECKING:
    from waystation.http import Credentials, VendorClient, VendorResponse


class DncApiSettings(VendorSettings):
    """Settings every paid DNC API station has (besides its key and base URL).

    - ``price``: USD per lookup under your plan (required: these vendors publish no list price);
      reserved before each call and booked for every answered lookup;
    - ``ignore_lists``: lists that do not make a number listed (default: none — every list the
      vendor names counts, also one this station does not know: fail closed);
    - ``on_listed``: the stop decision for a listed number (``skip_remaining`` by default).
    """

    base_url: str = ""
    price: float = Field(gt=0, description="USD per lookup under your plan (required; reserved before each call).")
    ignore_lists: list[str] = Field(default_factory=list,
                                    description="Lists that do not make a number listed (default: none).")
    on_listed: OnListed = Field(default="skip_remaining", description="Stop decision for a listed number.")
    http_timeout: float = Field(default=10.0, gt=0, description="Seconds per HTTP request.")
    evidence_days: float = Field(default=31, gt=0, description="Days a 'listed' answer stays valid as dial evidence.")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")


#: A vendor's list name → the evidence check (any other list: ``other_dnc``).
CHECK_OF_LIST = {"federal": "federal_dnc", "state": "state_dnc", "internal": "internal_dnc",
                 "litigator": "litigator", "dma": "dma"}


def listed_evidence(station: str, vendor: str, number: int, lists: list[str], days: float) -> list[dict[str, Any]]:
    """One ``listed`` evidence item per check the vendor's lists name (vendor as the source)."""
    now = utcnow()
    by_check: dict[str, list[str]] = {}
    for name in lists:
        by_check.setdefault(CHECK_OF_LIST.get(name, "other_dnc"), []).append(name)
    return [make_evidence(check, LISTED, station=station, phone=number, checked_at=now,
                          expires_at=expires_after(now, days), vendor=vendor, lists=names)
            for check, names in by_check.items()]


class DncApiStation(Station):
    """Base of the paid DNC scrub API stations (not registered itself).

    Requires ``phone`` (a US number; ``phone_valid: false`` or a non-US number is a free miss);
    provides ``dnc_listed`` and ``dnc_lists`` like the local ``DNCScrubStation``. A gate: a lookup
    that could not be made never lets the lead through as if it passed.
    """

    requires = ("phone",)
    optional = ("phone_valid", EVIDENCE_FIELD)
    provides: ClassVar[Mapping[str, Any]] = MappingProxyType({"dnc_listed": bool, "dnc_lists": list[str],
                                                              EVIDENCE_FIELD: list[dict[str, Any]]})
    cost = 0.0
    paid = True
    gate = True
    timeout = 30.0
    retry = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=10.0)
    breaker = BreakerPolicy(failure_threshold=5, reset_after=60.0)
    rate_limit = RateLimit(per_second=10)
    Settings: ClassVar[type[StationSettings]] = DncApiSettings
    vendor_hosts: ClassVar[tuple[str, ...]] = ()
    #: The vendor's name in messages, the setting holding the key and its environment variable.
    vendor: ClassVar[str] = ""
    key_setting: ClassVar[str] = "api_key"
    key_env: ClassVar[str] = ""
    #: Refused before any lead runs when the key is not set (the key setting's name).
    required_settings: ClassVar[tuple[str, ...]] = ("api_key",)
    #: The miss reason of a number the vendor says is not valid.
    invalid_reason: ClassVar[str] = "the vendor says the number is not valid"

    def __init__(self, settings: StationSettings | None = None) -> None:
        super().__init__(settings)
        self._http: VendorClient | None = None

    @classmethod
    def declared_cost(cls, settings: StationSettings) -> float:
        """Reserve the plan's price per lookup (the ``price`` setting) before each call."""
        assert isinstance(settings, DncApiSettings)
        return settings.price

    @property
    def config(self) -> DncApiSettings:
        """The settings, typed."""
        assert isinstance(self.settings, DncApiSettings)
        return self.settings

    def key(self) -> SecretStr | None:
        """The key (the ``key_setting`` setting), or ``None``."""
        value = getattr(self.config, self.key_setting, None)
        return value if isinstance(value, SecretStr) else None

    def credentials(self) -> Credentials:
        """How the key travels (a header or a query parameter)."""
        raise NotImplementedError

    async def open(self) -> None:
        """Take the process-wide pooled client of this station."""
        from waystation.http import VendorClient

        cfg = self.config
        if self._http is None:
            self._http = VendorClient(
                self.name, cfg.base_url, vendor=self.vendor, hosts=self.vendor_hosts, credentials=self.credentials(),
                allow_hosts=cfg.allow_hosts, max_bytes=cfg.max_response_bytes, timeout=cfg.http_timeout,
                max_connections=cfg.max_connections,
                headers={"User-Agent": "waystation-dnc", "Accept": "application/json"})
            await self._http.open()

    async def close(self) -> None:
        """Give the shared client back."""
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def process(self, ctx: StepContext) -> Outcome:
        """One lookup of the lead's phone; the vendor's lists mapped to ``dnc_lists``."""
        from waystation_dnc.lists import scrub_target

        cfg = self.config
        key = self.key()
        if key is None or not key.get_secret_value():
            raise AuthError(f"no {self.vendor} key: set {self.key_env}")
        number = scrub_target(ctx.data)
        if isinstance(number, str):
            return Outcome(misses={"dnc_listed": number})
        if self._http is None:
            await self.open()
        assert self._http is not None
        self._http.check_credentials()
        resp = await self.lookup(self._http, f"{number:010d}")
        lists = await self.lists_of(resp, f"{number:010d}")
        if lists is None:
            return Outcome(cost=cfg.price, misses={"dnc_listed": self.invalid_reason})
        counted = [name for name in lists if name not in cfg.ignore_lists]
        fields: dict[str, Any] = {"dnc_listed": bool(counted), "dnc_lists": counted}
        if counted:  # a listing is dial evidence (a clean answer is not: docs/compliance.md)
            fields[EVIDENCE_FIELD] = add_evidence(ctx.data.get(EVIDENCE_FIELD),
                                                  listed_evidence(self.name, self.vendor, number, counted,
                                                                  cfg.evidence_days))
        return Outcome(fields, cost=cfg.price)

    async def lookup(self, http: VendorClient, number: str) -> VendorResponse:
        """The vendor's answer for one 10-digit number."""
        raise NotImplementedError

    async def lists_of(self, resp: VendorResponse, number: str) -> list[str] | None:
        """The lists the answer puts the number on ([] when clean, ``None`` when the number is not
        valid); raises the step error a failed answer means."""
        raise NotImplementedError
