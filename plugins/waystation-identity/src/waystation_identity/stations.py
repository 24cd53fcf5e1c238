"""IdentityResolutionStation: the seed's ``resolve_identity()`` as a station.

This module is light (pydantic only); the parsing libraries (nameparser, probablepeople, usaddress,
phonenumbers, email-validator) live in :mod:`waystation_identity.resolve`, imported in ``open()``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict
from waystation import Outcome, RetryPolicy, Station, StationSettings, StepContext

if TYPE_CHECKING:
    from waystation_identity.resolve import Resolver

#: The input fields the station reads (all optional: it works with whatever the lead has).
INPUT_FIELDS: tuple[str, ...] = (
    "name", "full_name", "first_name", "middle_name", "last_name", "suffix", "company",
    "address", "street", "city", "state", "zipcode", "zip", "country", "phone", "email",
)


class IdentitySettings(StationSettings):
    """Settings of :class:`IdentityResolutionStation` (env prefix ``WAYSTATION_IDENTITY_``)."""

    model_config = SettingsConfigDict(env_prefix="WAYSTATION_IDENTITY_", extra="forbid", frozen=True,
                                      env_ignore_empty=True)

    default_region: str = Field(
        "US", description="ISO 3166 region used to read phone numbers written without a +country code.")
    use_country_field: bool = Field(
        True, description="Read a lead's 2-letter `country` field as the region of its phone number.")
    company_words: tuple[str, ...] = Field(
        (), description="Extra words that mark a name as a business (added to the built-in list).")
    clear_invalid: bool = Field(
        True, description="Remove an input phone or e-mail that is not valid from the lead (the raw value "
        "stays in the input columns), so that no later step pays to look it up.")

    @field_validator("default_region")
    @classmethod
    def _region(cls, v: str) -> str:
        v = v.strip().upper()
        if len(v) != 2 or not v.isalpha():
            raise ValueError("must be a 2-letter ISO 3166 region code such as US")
        return v


class IdentityResolutionStation(Station):
    """Normalise who the lead is from whatever the input has, offline and for free.

    Reads (all optional) ``name``/``full_name`` or ``first_name``/``last_name``; ``street``,
    ``city``, ``state``, ``zipcode`` (or ``zip``) or a one-line ``address``; ``phone``; ``email``.
    Provides the normalised name parts, ``is_company`` (and ``company`` for a business), the US
    address parts (``state`` as a 2-letter code, ``zipcode`` as 5 digits with leading zeros kept),
    ``phone`` in E.164 with ``phone_region``, ``phone_timezone`` (``phone_timezones`` when the
    area code spans a few zones) and ``phone_state`` (the area code's US state: calling-hour rules
    follow it), ``email`` normalised, the
    ``phone_valid`` / ``email_valid`` verdicts on the input, and ``lead_key``, a stable fingerprint.

    An input value that cannot be read is a miss for its field with the reason (the step still
    succeeds); the station never stops the route.
    """

    name = "IdentityResolutionStation"
    requires = ()
    optional = INPUT_FIELDS
    provides = MappingProxyType({
        "first_name": str,
        "middle_name": str,
        "last_name": str,
        "suffix": str,
        "is_company": bool,
        "company": str,
        "street": str,
        "city": str,
        "state": str,
        "zipcode": str,
        "phone": str,
        "phone_valid": bool,
        "phone_region": str,
        "phone_timezone": str,
        "phone_timezones": list[str],
        "phone_state": str,
        "email": str,
        "email_valid": bool,
        "lead_key": str,
    })
    cost = 0.0
    timeout = 10.0
    retry = RetryPolicy(max_attempts=1)
    Settings = IdentitySettings

    def __init__(self, settings: StationSettings | None = None) -> None:
        super().__init__(settings)
        self.resolver: Resolver | None = None

    async def open(self) -> None:
        """Import the parsing libraries and build the resolver."""
        from waystation_identity.resolve import Resolver

        assert isinstance(self.settings, IdentitySettings)
        self.resolver = Resolver(self.settings)

    async def process(self, ctx: StepContext) -> Outcome:
        """Resolve one lead: every field it can normalise, and a reasoned miss for each it cannot."""
        if self.resolver is None:
            await self.open()
        assert self.resolver is not None
        fields: dict[str, Any]
        fields, misses = self.resolver.resolve(ctx.data)
        clear: list[str] = []
        if self.settings.clear_invalid:  # type: ignore[attr-defined]
            clear = [name for name in ("phone", "email")
                     if fields.get(f"{name}_valid") is False and name not in fields and name in ctx.data]
        return Outcome(fields, misses=misses, clear=clear)
