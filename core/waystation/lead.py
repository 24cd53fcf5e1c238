"""The lead schema: the standard fields of a person record and their rules.

Checked on each step's outcome before it is merged (see the route's ``validation:``), so that a
station cannot write a malformed phone, e-mail or ZIP into the lead. Input fields are not checked
here: raw input is messy by nature and normalising it is a station's job.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ZIP = re.compile(r"^\d{5}(?:-\d{4})?$")
STATE = re.compile(r"^[A-Z]{2}$")

#: Fields a lead file may carry without any step providing them.
STANDARD_INPUT_FIELDS = frozenset({
    "id", "name", "full_name", "first_name", "middle_name", "last_name", "suffix", "company",
    "phone", "email", "address", "street", "city", "state", "zipcode", "zip", "country",
})


class LeadSchema(BaseModel):
    """The rules for standard lead fields; other fields pass (their types are the stations')."""

    model_config = ConfigDict(extra="allow")

    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    email: str | None = None
    zipcode: str | None = None
    state: str | None = None

    @field_validator("first_name", "last_name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be blank")
        return v

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        if v is not None and not E164.match(v):
            raise ValueError(f"phone {v!r} is not in E.164 form (+15551234567)")
        return v

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not EMAIL.match(v):
            raise ValueError(f"email {v!r} is not an e-mail address")
        return v

    @field_validator("zipcode")
    @classmethod
    def _zip(cls, v: str | None) -> str | None:
        if v is not None and not ZIP.match(v):
            raise ValueError(f"zipcode {v!r} is not a 5-digit ZIP (or ZIP+4)")
        return v

    @field_validator("state")
    @classmethod
    def _state(cls, v: str | None) -> str | None:
        if v is not None and not STATE.match(v):
            raise ValueError(f"state {v!r} is not a 2-letter code")
        return v


def _check_one(key: str, value: Any) -> str | None:
    validator = getattr(LeadSchema, _VALIDATORS[key])
    if not isinstance(value, str):
        return f"{key} must be text, not {type(value).__name__}"
    try:
        validator(value)
    except ValueError as exc:
        return str(exc)
    return None


_VALIDATORS = {"first_name": "_name", "last_name": "_name", "phone": "_phone", "email": "_email",
               "zipcode": "_zip", "state": "_state"}


def check_fields(fields: dict[str, Any]) -> dict[str, str]:
    """Check the standard fields among ``fields``; returns ``{field: problem}`` (empty: all good)."""
    problems: dict[str, str] = {}
    for key, value in fields.items():
        if value is not None and key in _VALIDATORS:
            problem = _check_one(key, value)
            if problem:
                problems[key] = problem
    return problems
