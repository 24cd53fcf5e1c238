"""TelnyxGatekeepStation: Telnyx Number Lookup v2 as a gatekeeper (the seed's ``validate_phone_telnyx()``).

One ``GET {base_url}/number_lookup/{E.164}`` per lead with the data sets the settings ask for:
``type=carrier`` (line type, carrier; on by default) and ``type=caller-name`` (CNAM; off by
default). Telnyx's ``type`` parameter is repeated to request several data sets in one lookup
(developers.telnyx.com, "Requesting data"); with no ``type`` the base lookup (validation,
formatting, portability/LRN) is made. Each data set is priced separately.

The station only reports; the *gate* (stop the route for rejected line types and invalid
numbers) is the plugin's ``decide_stop`` hook, see :func:`gate_decision`.

httpx is imported in :meth:`TelnyxGatekeepStation.open`, never at plugin import.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict
from waystation import (
    AuthError,
    BreakerPolicy,
    Outcome,
    PermanentError,
    QuotaExhaustedError,
    RateLimit,
    RetryPolicy,
    ServerError,
    Station,
    StationSettings,
    StepContext,
    Stop,
    ThrottledError,
    TransientError,
    VendorTimeout,
)

from waystation_telnyx.models import NumberLookupRecord, NumberLookupResponse, TelnyxErrors

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("waystation.telnyx")

#: Publicly cited prices per lookup, per data set (USD).
CARRIER_PRICE = 0.0025
CALLER_NAME_PRICE = 0.003
LRN_PRICE = 0.0015

#: ``carrier.type`` values of the OpenAPI spec.
LINE_TYPES = (
    "fixed line", "mobile", "voip", "fixed line or mobile", "toll free", "premium rate", "shared cost",
    "personal number", "pager", "uan", "voicemail", "unknown",
)
DEFAULT_REJECT = ("fixed line", "toll free", "premium rate", "pager", "voicemail", "unknown")

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def to_e164(raw: Any) -> str | None:
    """``raw`` as E.164, or ``None`` when it cannot be one.

    ``+`` numbers keep their digits; a bare 10-digit number (or 11 digits starting with 1) is
    taken as North American. Punctuation (spaces, dots, dashes, parentheses) is ignored.
    """
    if not isinstance(raw, str | int):
        return None
    text = str(raw).strip()
    digits = re.sub(r"\D", "", text)
    if text.startswith("+"):
        candidate = "+" + digits
    elif len(digits) == 10:
        candidate = "+1" + digits
    elif len(digits) == 11 and digits.startswith("1"):
        candidate = "+" + digits
    else:
        return None
    return candidate if _E164.match(candidate) else None


class TelnyxSettings(StationSettings):
    """Settings of :class:`TelnyxGatekeepStation` (route ``settings:`` or the environment).

    The API key comes from ``TELNYX_API_KEY`` (or ``api_key:`` in the route, not recommended);
    every other setting also reads ``WAYSTATION_TELNYX_<NAME>``.
    """

    model_config = SettingsConfigDict(
        env_prefix="WAYSTATION_TELNYX_", extra="forbid", frozen=True, populate_by_name=True,
        env_ignore_empty=True,
    )

    api_key: SecretStr | None = Field(default=None, validation_alias="TELNYX_API_KEY",
                                      description="Telnyx API v2 key, sent only as 'Authorization: Bearer'.")
    base_url: str = Field(default="https://api.telnyx.com/v2", description="API base URL (tests: 127.0.0.1).")
    carrier: bool = Field(default=True, description="Request the carrier data set (type=carrier).")
    caller_name: bool = Field(default=False, description="Also request caller name (type=caller-name).")
    carrier_price: float = Field(default=CARRIER_PRICE, ge=0, description="USD per carrier lookup.")
    caller_name_price: float = Field(default=CALLER_NAME_PRICE, ge=0,
                                     description="USD per caller-name lookup.")
    lrn_price: float = Field(default=LRN_PRICE, ge=0,
                             description="USD per base lookup (portability/LRN): no data set is on.")
    reject_line_types: Annotated[tuple[str, ...], NoDecode] = Field(default=DEFAULT_REJECT,
                                               description="Line types that stop the route (SKIP_REMAINING).")
    on_invalid: Literal["skip_remaining", "fail", "continue"] = Field(
        default="skip_remaining", description="Stop decision when the number is not valid.")
    on_unprocessable: Literal["miss", "fail"] = Field(
        default="miss", description="A 422 (e.g. a Canadian number on a US-only account): a reasoned miss, "
                                    "or a permanent error.")
    http_timeout: float = Field(default=10.0, gt=0, description="Seconds per HTTP request.")

    @field_validator("reject_line_types", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return tuple(json.loads(value))
            return tuple(p for p in (s.strip() for s in value.split(",")) if p)
        return value

    @field_validator("reject_line_types")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for v in value:
            low = " ".join(v.lower().replace("_", " ").split())
            if low not in LINE_TYPES:
                raise ValueError(f"unknown line type {v!r}; Telnyx line types are: {', '.join(LINE_TYPES)}")
            out.append(low)
        return tuple(out)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")

    def data_sets(self) -> tuple[str, ...]:
        """The ``type`` values requested, in order (empty: the base lookup)."""
        out = []
        if self.carrier:
            out.append("carrier")
        if self.caller_name:
            out.append("caller-name")
        return tuple(out)

    def lookup_price(self) -> float:
        """The price of one lookup with these settings."""
        price = 0.0
        if self.carrier:
            price += self.carrier_price
        if self.caller_name:
            price += self.caller_name_price
        return price if (self.carrier or self.caller_name) else self.lrn_price


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``x-ratelimit-reset`` (seconds, or an epoch) or ``Retry-After``."""
    raw = headers.get("x-ratelimit-reset")
    if raw is not None:
        try:
            value = float(raw)
        except ValueError:
            value = None
        if value is not None:
            return max(0.0, value - time.time()) if value > 1e9 else max(0.0, value)
    raw = headers.get("retry-after")
    if raw is not None:
        try:
            return max(0.0, float(raw))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(raw) if raw else None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    return None


def _ported(status: str | None) -> bool | None:
    if status is None:
        return None
    low = status.strip().upper()
    return True if low == "Y" else False if low == "N" else None


def _nonblank(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


class TelnyxGatekeepStation(Station):
    """Looks a phone number up at Telnyx (Number Lookup v2) and provides its line type, carrier,
    portability and (optionally) caller name; the plugin's stop hook gates the route on them.

    Requires ``phone``. Cost per lookup is the sum of the requested data sets' prices, and that is
    what is reserved before each call (:meth:`declared_cost` follows the settings).
    """

    name = "TelnyxGatekeepStation"
    requires = ("phone",)
    provides = MappingProxyType({
        "line_type": str,
        "carrier": str,
        "normalized_carrier": str,
        "ported": bool,
        "caller_name": str,
        "phone_valid": bool,
    })
    cost = CARRIER_PRICE + CALLER_NAME_PRICE
    paid = True
    timeout = 15.0
    retry = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=10.0)
    breaker = BreakerPolicy(failure_threshold=5, reset_after=60.0)
    rate_limit = RateLimit(per_second=10.0, concurrent=5)
    Settings = TelnyxSettings

    settings: TelnyxSettings

    def __init__(self, settings: TelnyxSettings | None = None) -> None:
        super().__init__(settings)
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def declared_cost(cls, settings: StationSettings) -> float:
        """Reserve exactly what one lookup with these settings costs."""
        assert isinstance(settings, TelnyxSettings)
        return settings.lookup_price()

    async def open(self) -> None:
        """Create the HTTP client (httpx is imported here, not at plugin import)."""
        import httpx

        s = self.settings
        headers = {"Accept": "application/json", "User-Agent": "waystation-telnyx/0.1"}
        if s.api_key is not None and s.api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {s.api_key.get_secret_value()}"
        self._client = httpx.AsyncClient(base_url=s.base_url + "/", headers=headers,
                                         timeout=httpx.Timeout(s.http_timeout), follow_redirects=False)

    async def close(self) -> None:
        """Close the HTTP client."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _clean(self, text: str) -> str:
        key = self.settings.api_key.get_secret_value() if self.settings.api_key is not None else ""
        return text.replace(key, "***") if key else text

    async def process(self, ctx: StepContext) -> Outcome:
        """Look the lead's phone up and report what Telnyx says about it."""
        import httpx

        s = self.settings
        number = to_e164(ctx.get("phone"))
        if number is None:
            why = "phone is not an E.164 or 10-digit NANP number; not looked up"
            return Outcome({"phone_valid": False}, misses={"line_type": why})
        if s.api_key is None or not s.api_key.get_secret_value():
            raise AuthError("no Telnyx API key: set the TELNYX_API_KEY environment variable")
        if self._client is None:
            await self.open()
        assert self._client is not None
        sets = list(s.data_sets())
        params = {"type": sets} if sets else None     # repeated: type=carrier&type=caller-name
        try:
            resp = await self._client.get(f"number_lookup/{quote(number, safe='+')}", params=params)
        except httpx.TimeoutException as exc:
            raise VendorTimeout(f"Telnyx did not answer in time ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise TransientError(f"Telnyx connection failed ({type(exc).__name__})") from None
        if resp.status_code != 200:
            return self._error(resp)
        try:
            payload = resp.json()
        except ValueError:
            raise ServerError("Telnyx answered 200 with a body that is not JSON", status=200) from None
        try:
            record = NumberLookupResponse.model_validate(payload).data
        except ValidationError:
            raise ServerError("Telnyx answered 200 without a number_lookup record in 'data'",
                              status=200) from None
        return self._outcome(record)

    def _outcome(self, record: NumberLookupRecord) -> Outcome:
        s = self.settings
        carrier, port, cnam = record.carrier, record.portability, record.caller_name
        misses: dict[str, str] = {}
        line_type = _nonblank(carrier.type if carrier else None) or _nonblank(
            port.line_type if port else None)
        carrier_name = _nonblank(carrier.name if carrier else None) or _nonblank(
            port.spid_carrier_name if port else None)
        normalized = _nonblank(carrier.normalized_carrier if carrier else None)
        ported = _ported(port.ported_status if port else None)
        if record.valid_number is not None:
            valid: bool | None = record.valid_number
        else:
            valid = True if (carrier is not None or port is not None) else None
        fields: dict[str, Any] = {
            "line_type": line_type.lower() if line_type else None,
            "carrier": carrier_name,
            "normalized_carrier": normalized,
            "ported": ported,
            "phone_valid": valid,
        }
        if valid is False:
            misses["line_type"] = "Telnyx says the number is not valid (valid_number: false)"
        elif line_type is None:
            misses["line_type"] = "Telnyx returned no carrier type and no portability line type"
        if carrier_name is None and valid is not False:
            misses["carrier"] = "Telnyx returned no carrier name"
        if ported is None and valid is not False:
            misses["ported"] = "Telnyx returned no portability status"
        if s.caller_name:
            name = _nonblank(cnam.caller_name if cnam else None)
            fields["caller_name"] = name
            if name is None:
                code = cnam.error_code if cnam else None
                misses["caller_name"] = "Telnyx returned no caller name" + (
                    f" (error_code {code})" if code else "")
        return Outcome(fields, cost=s.lookup_price(), misses={k: self._clean(v) for k, v in misses.items()})

    def _error(self, resp: httpx.Response) -> Outcome:
        status = resp.status_code
        try:
            summary = TelnyxErrors.model_validate(resp.json()).summary()
        except (ValueError, ValidationError):
            summary = ""
        summary = self._clean(summary) or resp.reason_phrase or "no detail"
        where = f"Telnyx answered HTTP {status} ({summary})"
        if status in (401, 403):
            raise AuthError(f"{where}: check TELNYX_API_KEY")
        if status == 402:
            raise QuotaExhaustedError(f"{where}: the account has no balance left")
        if status == 429:
            raise ThrottledError(where, retry_after=_retry_after(resp.headers))
        if status == 422:
            if self.settings.on_unprocessable == "fail":
                raise PermanentError(where)
            reason = f"Telnyx cannot look this number up: {where}"
            return Outcome({}, cost=0.0, misses={"line_type": reason, "phone_valid": reason})
        if status == 408:
            raise VendorTimeout(where)
        if status >= 500:
            raise ServerError(where, status=status)
        raise PermanentError(where)


def gate_decision(settings: TelnyxSettings, outcome: Outcome) -> tuple[Stop, str] | None:
    """The gate: what the route does after a Telnyx lookup (``None``: go on).

    - a number that is not valid → ``on_invalid`` (default ``skip_remaining``);
    - a line type in ``reject_line_types`` → ``SKIP_REMAINING``; a lookup that gave no line type
      counts as ``unknown`` (rejected by default), with the reason it gave none.
    """
    fields = outcome.fields
    if fields.get("phone_valid") is False:
        if settings.on_invalid == "continue":
            return None
        stop = Stop.FAIL if settings.on_invalid == "fail" else Stop.SKIP_REMAINING
        return stop, "telnyx: the phone number is not valid"
    line_type = fields.get("line_type")
    shown = str(line_type).lower() if line_type else "unknown"
    if shown in settings.reject_line_types:
        why = "" if line_type else f" ({outcome.misses.get('line_type', 'no line type returned')})"
        return Stop.SKIP_REMAINING, f"telnyx: line type '{shown}' is rejected (reject_line_types){why}"
    return None
