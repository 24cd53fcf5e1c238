"""Pydantic models of the RapidAPI "Skip Tracing Working API" answers, lenient on purpose.

Key names follow the vendor (spaces and Pascal case at the top level, snake_case in current
addresses, camelCase in previous ones). Ages arrive as text or numbers; lists may be missing;
unknown keys are kept.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _as_text(value: Any) -> Any:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else str(value)
    return value


def _as_list(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    return value


Text = Annotated[str | None, BeforeValidator(_as_text)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class Candidate(_Lenient):
    """One search result: ``{"Name", "Person ID", "Age", "Lives in"}``."""

    name: Text = Field(default=None, alias="Name")
    person_id: Text = Field(default=None, alias="Person ID")
    age: Text = Field(default=None, alias="Age")
    lives_in: Text = Field(default=None, alias="Lives in")


class SearchResponse(_Lenient):
    """The answer of every ``/search/by*`` endpoint: ``{"PeopleDetails": [...]}`` (may be empty or
    missing when nobody matched)."""

    people: Annotated[list[Candidate], BeforeValidator(_as_list)] = Field(default_factory=list,
                                                                          alias="PeopleDetails")
    message: Text = None


class PersonSummary(_Lenient):
    """An entry of ``Person Details``."""

    person_name: Text = Field(default=None, alias="Person_name")
    age: Text = Field(default=None, alias="Age")
    born: Text = Field(default=None, alias="Born")
    lives_in: Text = Field(default=None, alias="Lives in")
    telephone: Text = Field(default=None, alias="Telephone")


class PhoneDetail(_Lenient):
    """An entry of ``All Phone Details``."""

    phone_number: Text = None
    phone_type: Text = None
    last_reported: Text = None
    provider: Text = None


class DetailsResponse(_Lenient):
    """The answer of ``/search/detailsbyID?peo_id=``: the full record."""

    person: Annotated[list[PersonSummary], BeforeValidator(_as_list)] = Field(default_factory=list,
                                                                              alias="Person Details")
    emails: Annotated[list[Any], BeforeValidator(_as_list)] = Field(default_factory=list,
                                                                    alias="Email Addresses")
    phones: Annotated[list[PhoneDetail], BeforeValidator(_as_list)] = Field(default_factory=list,
                                                                            alias="All Phone Details")
    current_addresses: Annotated[list[dict[str, Any]], BeforeValidator(_as_list)] = Field(
        default_factory=list, alias="Current Address Details List")
    message: Text = None

    @property
    def is_record(self) -> bool:
        """Whether it carries a person at all (a "peo_id Not Valid" answer does not)."""
        return bool(self.person or self.phones or self.emails or self.current_addresses)
