"""Pydantic models of Telnyx Number Lookup v2 responses, lenient where live responses are.

Shapes follow the ``number-lookup`` part of Telnyx's public OpenAPI spec (``NumberLookupRecord``,
``Carrier``, ``CallerName``, ``Portability``, ``number-lookup_Errors``). What live responses do
beyond the spec is tolerated on purpose:

- ``mobile_network_code`` (and any code) arrives as a number in the docs' own example: every
  code-like field accepts numbers and keeps them as text;
- ``carrier``, ``caller_name`` and ``portability`` can each be ``null``;
- undocumented fields (``valid_number``, ``nnid_override``, ...) appear: extra keys are kept;
- error ``code`` can arrive as a number.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


def _as_text(value: Any) -> Any:
    """Numbers become their decimal text; ``""`` stays ``""``; anything else passes through."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return value


Text = Annotated[str | None, BeforeValidator(_as_text)]


def _as_bool(value: Any) -> Any:
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "y", "yes", "1"):
            return True
        if low in ("false", "n", "no", "0"):
            return False
        return None
    return value


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Carrier(_Lenient):
    """The ``carrier`` data set (``type=carrier``)."""

    name: Text = None
    normalized_carrier: Text = None
    type: Text = None
    mobile_country_code: Text = None
    mobile_network_code: Text = None
    error_code: Text = None


class CallerName(_Lenient):
    """The ``caller_name`` data set (``type=caller-name``, CNAM)."""

    caller_name: Text = None
    error_code: Text = None


class Portability(_Lenient):
    """The ``portability`` block (LRN data; returned for North American numbers)."""

    lrn: Text = None
    ported_status: Text = None
    ported_date: Text = None
    ocn: Text = None
    line_type: Text = None
    spid: Text = None
    spid_carrier_name: Text = None
    spid_carrier_type: Text = None
    altspid: Text = None
    altspid_carrier_name: Text = None
    altspid_carrier_type: Text = None
    city: Text = None
    state: Text = None


class NumberLookupRecord(_Lenient):
    """``data`` of a successful lookup (``record_type: number_lookup``)."""

    phone_number: Text = None
    national_format: Text = None
    country_code: Text = None
    record_type: Text = None
    fraud: Any = None
    carrier: Carrier | None = None
    caller_name: CallerName | None = None
    portability: Portability | None = None
    valid_number: Annotated[bool | None, BeforeValidator(_as_bool)] = None


class NumberLookupResponse(_Lenient):
    """The body of a 200 answer: ``{"data": {...}}``."""

    data: NumberLookupRecord


class TelnyxError(_Lenient):
    """One entry of an error body's ``errors`` list."""

    code: Text = None
    title: Text = None
    detail: Text = None


class TelnyxErrors(_Lenient):
    """An error body: ``{"errors": [{"code", "title", "detail", "source", "meta"}]}``."""

    errors: list[TelnyxError] = []

    def summary(self, limit: int = 300) -> str:
        """The errors as one short line: ``10009 Authentication failed: <detail>; ...``."""
        parts = []
        for e in self.errors:
            head = " ".join(p for p in (e.code, e.title) if p)
            parts.append(f"{head}: {e.detail}" if e.detail else head)
        text = "; ".join(p for p in parts if p)
        return text[:limit]
