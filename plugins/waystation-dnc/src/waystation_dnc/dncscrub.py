"""DNCScrubApiStation: the DNCScrub API of Contact Center Compliance (DNC.com) as a paid DNC gate.

``GET {base_url}/app/main/rpc/scrub?phoneList=5039367187&version=5&output=json`` with the header
``loginId: <API key>`` answers a list with one record per number: ``Phone``, ``ResultCode``
(``D`` do not call, with the list in ``Reason``; ``C`` clean; ``W`` wireless; ``E`` an
established business relationship), ``Reason`` (``Litigator``, ``National (USA) 2003-06-01;;;``,
...), ``IsWirelessOrVoIP``, ``LineType``, ... A result code this station does not know is never
read as clean: the step fails (the gate holds the lead). 400 is a bad request, 401 a bad key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, RootModel, SecretStr
from pydantic_settings import SettingsConfigDict
from waystation import PermanentError, ServerError

from waystation_dnc.api import DncApiSettings, DncApiStation

if TYPE_CHECKING:
    from waystation.http import Credentials, VendorClient, VendorResponse

#: Result codes that do not put the number on a list (clean, wireless, an EBR exemption).
CLEAN_CODES = frozenset({"C", "W", "E"})
#: Result codes of a number that must not be called.
LISTED_CODES = frozenset({"D"})
#: Result code of a number that is not valid.
INVALID_CODES = frozenset({"I"})


def list_of_reason(reason: str) -> str:
    """The ``dnc_lists`` name of a ``D`` record's ``Reason`` (an unknown one keeps its first part)."""
    low = reason.lower()
    if "litigator" in low:
        return "litigator"
    if "national" in low or "federal" in low:
        return "federal"
    if "state" in low:
        return "state"
    if "internal" in low or "project" in low or "company" in low:
        return "internal"
    first = reason.split(";")[0].strip().lower()
    return first or "dnc"


class ScrubRecord(BaseModel):
    """One record of a scrub answer (keys as the vendor writes them)."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    phone: str = Field(alias="Phone")
    result_code: str = Field(alias="ResultCode")
    reason: str | None = Field(default=None, alias="Reason")
    line_type: str | None = Field(default=None, alias="LineType")


class ScrubAnswer(RootModel[list[ScrubRecord]]):
    """The answer: one record per number asked."""


class DncScrubApiSettings(DncApiSettings):
    """Settings of :class:`DNCScrubApiStation` (route ``settings:`` or ``WAYSTATION_DNCSCRUB_<NAME>``;
    the key from ``DNCSCRUB_API_KEY``)."""

    model_config = SettingsConfigDict(env_prefix="WAYSTATION_DNCSCRUB_", extra="forbid", frozen=True,
                                      populate_by_name=True, env_ignore_empty=True)

    api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("api_key", "DNCSCRUB_API_KEY"),
                                      description="DNCScrub API key (sent as the loginId header).")
    base_url: str = Field(default="https://www.dncscrub.com", description="API base URL (tests: 127.0.0.1).")
    project_id: str | None = Field(default=None, description="DNCScrub project (projId) whose lists to scrub against.")


class DNCScrubApiStation(DncApiStation):
    """Scrub a phone number with the DNCScrub API (DNC.com): national and state DNC lists, known
    litigators and the project's internal list, one paid lookup per number.

    Provides ``dnc_listed`` and ``dnc_lists`` (``federal``, ``state``, ``litigator``,
    ``internal``, or the first part of the vendor's reason); a listed number stops the route
    (``on_listed``). Every answered lookup is billed at ``price``; errors are not.
    """

    name = "DNCScrubApiStation"
    Settings = DncScrubApiSettings
    vendor_hosts: ClassVar[tuple[str, ...]] = ("www.dncscrub.com", "dataapi.dncscrub.com")
    vendor: ClassVar[str] = "DNCScrub"
    key_env: ClassVar[str] = "DNCSCRUB_API_KEY"
    invalid_reason: ClassVar[str] = "DNCScrub: the number is not valid (ResultCode I)"

    def credentials(self) -> Credentials:
        """The key as the ``loginId`` header."""
        from waystation.http import Credentials

        return Credentials(headers={"loginId": self.key()})

    async def lookup(self, http: VendorClient, number: str) -> VendorResponse:
        """``GET /app/main/rpc/scrub?phoneList=...&version=5&output=json``."""
        params = {"phoneList": number, "version": "5", "output": "json"}
        cfg = self.config
        assert isinstance(cfg, DncScrubApiSettings)
        if cfg.project_id:
            params["projId"] = cfg.project_id
        return await http.get("app/main/rpc/scrub", params=params)

    async def lists_of(self, resp: VendorResponse, number: str) -> list[str] | None:
        """The number's record mapped to lists; an unknown result code fails closed."""
        resp.raise_for_status(detail=" ".join(resp.text().split())[:160], auth_hint="check DNCSCRUB_API_KEY")
        records = (await resp.parse(ScrubAnswer)).root
        record = next((r for r in records if r.phone.split("|")[0].strip() == number), None)
        if record is None:
            raise ServerError(f"DNCScrub answered {len(records)} record(s) but none for the number asked", status=200)
        code = record.result_code.strip().upper()
        if code in INVALID_CODES:
            return None
        if code in CLEAN_CODES:
            return []
        if code in LISTED_CODES:
            return [list_of_reason(record.reason or "")]
        raise PermanentError(f"DNCScrub answered ResultCode {code!r} ({(record.reason or '')[:60]!r}), which this "
                             "station does not know: not treated as clean")
