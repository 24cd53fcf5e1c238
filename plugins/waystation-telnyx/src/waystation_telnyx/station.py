"""TelnyxGatekeepStation: Telnyx Number Lookup v2 as a gatekeeper (the seed's ``validate_phone_telnyx()``).

``GET {base_url}/number_lookup/{E.164}`` with the data sets the settings ask for: ``type=carrier``
(line type, carrier; on by default) and ``type=caller-name`` (CNAM; off by default). Telnyx's
published OpenAPI spec declares ``type`` as *one* value (an enum), so each data set is its own
request (carrier first); with no data set the base lookup (validation, formatting,
portability/LRN) is made. Each data set is priced separately; a lookup whose second request fails
books the first one (it was billed) and a retry of the step does not buy it again.

The station only reports; the *gate* (stop the route for rejected line types and invalid
numbers) is the plugin's ``decide_stop`` hook, see :func:`gate_decision`.

HTTP goes through :mod:`waystation.http` (imported when the station opens): the process-wide
pooled client, bodies capped at ``max_response_bytes``, the key sent only as
``Authorization: Bearer`` over https to ``api.telnyx.com`` (or a host the route allows with
``allow_hosts``), statuses mapped to the core's errors (a 429 carries its ``x-ratelimit-reset``
wait, which pauses every Telnyx call and defers the lead when longer than the retry policy).
"""

from __future__ import annotations

import collections
import json
import logging
import re
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict
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
    StepError,
    Stop,
)
from waystation.dial.evidence import EVIDENCE_FIELD, expires_after, utcnow
from waystation.dial.evidence import add as add_evidence
from waystation.dial.evidence import make as make_evidence
from waystation.http import VendorSettings

from waystation_telnyx.models import NumberLookupRecord, NumberLookupResponse, TelnyxErrors

if TYPE_CHECKING:
    from waystation.http import VendorClient, VendorResponse

log = logging.getLogger("waystation.telnyx")

#: Publicly cited prices per lookup, per data set (USD).
CARRIER_PRICE = 0.0025
CALLER_NAME_PRICE = 0.003
LRN_PRICE = 0.0015

#: The hosts the Telnyx key may be sent to (https only).
VENDOR_HOSTS = ("api.telnyx.com",)

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


class TelnyxSettings(VendorSettings):
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
    max_connections: int = Field(default=10, ge=1, le=1000, description="Pooled connections to Telnyx.")
    evidence_days: float = Field(default=31, gt=0, description="Days a line-type answer stays valid as dial evidence.")

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

    Requires ``phone``. Cost per lookup is the sum of the requested data sets' prices (one request
    each), and that is what is reserved before each call (:meth:`declared_cost` follows the settings).
    Appends a ``line_type`` evidence item (``wireless`` / ``landline`` / ``voip`` / ``other`` /
    ``unknown``, vendor ``telnyx`` and its ``x-request-id``; valid ``evidence_days``) to
    ``dial_evidence``.
    """

    name = "TelnyxGatekeepStation"
    gate = True  # later steps rely on its verdict: if it cannot run, the lead is held
    required_settings = ("api_key",)  # refused before any lead runs when TELNYX_API_KEY is not set
    requires = ("phone",)
    optional = (EVIDENCE_FIELD,)
    provides = MappingProxyType({
        EVIDENCE_FIELD: list[dict[str, Any]],
        "line_type": str,
        "carrier": str,
        "normalized_carrier": str,
        "ported": bool,
        "caller_name": str,
        "phone_valid": bool,
    })
    cost = CARRIER_PRICE + CALLER_NAME_PRICE
    paid = True
    gate = True
    vendor_hosts: ClassVar[tuple[str, ...]] = VENDOR_HOSTS
    timeout = 15.0
    retry = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=10.0)
    breaker = BreakerPolicy(failure_threshold=5, reset_after=60.0)
    rate_limit = RateLimit(per_second=10.0, concurrent=5)
    Settings = TelnyxSettings

    settings: TelnyxSettings

    #: How many leads' half-done two-request lookups are remembered between engine attempts.
    partial_limit = 1024

    def __init__(self, settings: TelnyxSettings | None = None) -> None:
        super().__init__(settings)
        self._http: VendorClient | None = None
        self._partial: collections.OrderedDict[tuple[str | None, str, str], NumberLookupRecord] = (
            collections.OrderedDict())

    @classmethod
    def declared_cost(cls, settings: StationSettings) -> float:
        """Reserve exactly what one lookup with these settings costs."""
        assert isinstance(settings, TelnyxSettings)
        return settings.lookup_price()

    async def open(self) -> None:
        """Take the process-wide Telnyx client (waystation.http is imported here, not at plugin import)."""
        from waystation.http import Credentials, VendorClient

        s = self.settings
        self._http = VendorClient(
            self.name, s.base_url, vendor="Telnyx", hosts=self.vendor_hosts, allow_hosts=s.allow_hosts,
            credentials=Credentials(headers={"Authorization": s.api_key},
                                    header_format={"Authorization": "Bearer {}"}),
            max_bytes=s.max_response_bytes, timeout=s.http_timeout, max_connections=s.max_connections,
            headers={"Accept": "application/json", "User-Agent": "waystation-telnyx/0.1"})
        await self._http.open()

    async def close(self) -> None:
        """Give the shared client back."""
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    def _clean(self, text: str) -> str:
        key = self.settings.api_key.get_secret_value() if self.settings.api_key is not None else ""
        return text.replace(key, "***") if key else text

    async def process(self, ctx: StepContext) -> Outcome:
        """Look the lead's phone up (one request per data set) and report what Telnyx says."""
        from waystation.http import path_segment

        s = self.settings
        number = to_e164(ctx.get("phone"))
        if number is None:
            why = "phone is not an E.164 or 10-digit NANP number; not looked up"
            return Outcome({"phone_valid": False}, misses={"line_type": why})
        if s.api_key is None or not s.api_key.get_secret_value():
            raise AuthError("no Telnyx API key: set the TELNYX_API_KEY environment variable")
        if self._http is None:
            await self.open()
        assert self._http is not None
        self._http.check_credentials()
        path = f"number_lookup/{path_segment(number)}"
        sets = list(s.data_sets())
        memo = (ctx.run_id, ctx.lead_id, ctx.step_id)
        if not sets:
            resp = await self._http.get(path)
            if resp.status != 200:
                return self._error(resp)
            base = (await resp.parse(NumberLookupResponse)).data
            return with_line_type_evidence(self._outcome(base, s.lookup_price()), ctx, number,
                                           resp.headers.get("x-request-id"), s.evidence_days)
        record: NumberLookupRecord | None = self._partial.get(memo)
        spent = 0.0
        done = 1 if record is not None else 0
        if record is not None:
            spent = s.carrier_price  # bought by an earlier attempt and booked then
        for kind in sets[done:]:
            resp = await self._http.get(path, params={"type": kind})
            price = s.carrier_price if kind == "carrier" else s.caller_name_price
            try:
                if resp.status != 200:
                    miss = self._error(resp)
                    if record is None:
                        return miss
                    break  # the caller-name request failed softly: keep the carrier answer
                got = (await resp.parse(NumberLookupResponse)).data
            except StepError as exc:
                if record is not None and done == 0:
                    # the carrier request was billed: book it now, reuse its answer on a retry
                    self._partial[memo] = record
                    while len(self._partial) > self.partial_limit:
                        self._partial.popitem(last=False)
                    exc.costing(exc.incurred_cost + spent)
                raise
            spent += price
            record = got if record is None else _merge(record, got)
        self._partial.pop(memo, None)
        assert record is not None
        already = s.carrier_price if done else 0.0
        return with_line_type_evidence(self._outcome(record, spent - already), ctx, number,
                                       resp.headers.get("x-request-id"), s.evidence_days)

    def _outcome(self, record: NumberLookupRecord, cost: float) -> Outcome:
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
        if normalized is None and valid is not False:
            misses["normalized_carrier"] = (
                "Telnyx returned no normalized_carrier (it is sent only when Telnyx knows the primary network)"
                if s.carrier else "the carrier data set was not requested (carrier: false)")
        if ported is None and valid is not False:
            misses["ported"] = "Telnyx returned no portability status"
        if s.caller_name:
            name = _nonblank(cnam.caller_name if cnam else None)
            fields["caller_name"] = name
            if name is None:
                code = cnam.error_code if cnam else None
                misses["caller_name"] = "Telnyx returned no caller name" + (
                    f" (error_code {code})" if code else "")
        return Outcome(fields, cost=cost, misses={k: self._clean(v) for k, v in misses.items()})

    def _error(self, resp: VendorResponse) -> Outcome:
        """A non-200 answer: a reasoned miss for a number Telnyx cannot look up (422 about the
        number), else the core's error for the status."""
        try:
            errors = TelnyxErrors.model_validate(json.loads(resp.body))
        except (ValueError, RecursionError, ValidationError):
            errors = TelnyxErrors()
        summary = self._clean(errors.summary()) or resp.reason or "no detail"
        if resp.status == 422:
            about = _unprocessable_cause(errors)
            where = f"Telnyx answered HTTP 422 ({summary})"
            if about == "request":
                from waystation.http import BadRequestError

                raise BadRequestError(f"{where}: Telnyx refused the request itself, not the number — a "
                                      "configuration error of this station (check its settings)")
            if self.settings.on_unprocessable == "fail":
                raise PermanentError(where)
            reason = f"Telnyx cannot look this number up: {where}"
            return Outcome({}, cost=0.0, misses={"line_type": reason, "phone_valid": reason})
        resp.raise_for_status(detail=summary, auth_hint="check TELNYX_API_KEY")
        raise PermanentError(f"Telnyx answered HTTP {resp.status} ({summary})")  # pragma: no cover


def _unprocessable_cause(errors: TelnyxErrors) -> Literal["number", "request"]:
    """Whether a 422 is about the number looked up (a per-number miss) or about our request (a
    query parameter Telnyx does not accept: a configuration error)."""
    for e in errors.errors:
        source = getattr(e, "source", None)
        if isinstance(source, dict):
            if source.get("parameter"):
                return "request"
            pointer = str(source.get("pointer") or "")
            if "phone" in pointer:
                return "number"
        if e.detail and "number" in e.detail.lower():
            return "number"
    return "request"


def _merge(first: NumberLookupRecord, second: NumberLookupRecord) -> NumberLookupRecord:
    """The record of the carrier request with the caller name of the caller-name request."""
    update: dict[str, Any] = {"caller_name": second.caller_name}
    for name in ("carrier", "portability", "valid_number"):
        if getattr(first, name) is None and getattr(second, name) is not None:
            update[name] = getattr(second, name)
    return first.model_copy(update=update)


#: ``carrier.type`` → the evidence's line type (``fixed line or mobile`` may be wireless: it is).
EVIDENCE_LINE_TYPES = {"mobile": "wireless", "fixed line or mobile": "wireless", "fixed line": "landline",
                       "voip": "voip", "unknown": "unknown"}


def with_line_type_evidence(outcome: Outcome, ctx: StepContext, number: str, request_id: str | None,
                            days: float) -> Outcome:
    """``outcome`` with a ``line_type`` evidence item added to the lead's ``dial_evidence``."""
    raw = outcome.fields.get("line_type")
    kind = EVIDENCE_LINE_TYPES.get(raw, "other") if raw else "unknown"
    now = utcnow()
    item = make_evidence("line_type", kind, station=TelnyxGatekeepStation.name, phone=number, checked_at=now,
                         expires_at=expires_after(now, days), vendor="telnyx", request_id=request_id,
                         line_type=raw)
    fields = {**outcome.fields, EVIDENCE_FIELD: add_evidence(ctx.data.get(EVIDENCE_FIELD), [item])}
    return outcome.model_copy(update={"fields": fields})


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
