"""BlacklistAllianceStation: the Blacklist Alliance lookup API (federal and state DNC, known
litigators, the account's suppression list) as a paid DNC gate.

``GET {base_url}/lookup?key=<KEY>&ver=v5&resp=json&phone=2223334444`` answers
``{"status": "success", "message": "Good" | "Blacklisted" | "FederalDNC" | "StateDNC" |
"Suppressed", "code": "prelitigation1,federal-dnc" | "none", "wireless": 0 | 1, ...}``. A bad key
or a client IP the account has not whitelisted is answered with plain text ("API Key Not Found",
"Access denied"), not JSON. The key travels in the query string (the vendor's design): it is sent
only over https to ``api.blacklistalliance.net`` and never put in a message or a log line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict
from waystation import AuthError, PermanentError, ServerError
from waystation.http import BadResponse

from waystation_dnc.api import DncApiSettings, DncApiStation

if TYPE_CHECKING:
    from waystation.http import Credentials, VendorClient, VendorResponse

#: Codes naming a litigation risk (plaintiffs, attorneys, pre-litigation, "screamers", TCPA).
LITIGATION_CODES = frozenset({
    "plaintiff-primary", "plaintiff-secondary", "attorney-primary", "attorney-secondary", "prelitigation1",
    "prelitigation2", "screamer", "anti-telemarketing", "tcpa",
})
#: ``message`` values without a list code of their own.
MESSAGE_LISTS = {"federaldnc": "federal", "statednc": "state", "suppressed": "suppressed",
                 "blacklisted": "blacklisted"}


def list_of_code(code: str) -> str:
    """The ``dnc_lists`` name of one Blacklist Alliance code (an unknown code keeps its own name)."""
    if code in LITIGATION_CODES:
        return "litigator"
    if code == "federal-dnc":
        return "federal"
    if code.endswith("-dnc"):
        return "state"
    return code


class BlacklistAnswer(BaseModel):
    """The JSON answer of the simple lookup API (v5)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    status: str | None = None
    message: str | None = None
    code: str | None = None
    phone: str | None = None
    wireless: int | str | None = None


class BlacklistAllianceSettings(DncApiSettings):
    """Settings of :class:`BlacklistAllianceStation` (route ``settings:`` or
    ``WAYSTATION_BLACKLIST_<NAME>``; the key from ``BLACKLIST_ALLIANCE_KEY``)."""

    model_config = SettingsConfigDict(env_prefix="WAYSTATION_BLACKLIST_", extra="forbid", frozen=True,
                                      populate_by_name=True, env_ignore_empty=True)

    api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("api_key", "BLACKLIST_ALLIANCE_KEY"),
                                      description="Blacklist Alliance API key (sent as the key query parameter).")
    base_url: str = Field(default="https://api.blacklistalliance.net", description="API base URL (tests: 127.0.0.1).")


class BlacklistAllianceStation(DncApiStation):
    """Scrub a phone number with the Blacklist Alliance API: federal and state DNC lists, known
    TCPA litigators and the account's suppression list, one paid lookup per number.

    Provides ``dnc_listed`` and ``dnc_lists`` (``federal``, ``state``, ``litigator``,
    ``suppressed``, or the vendor's own name for anything else); a listed number stops the route
    (``on_listed``). Every answered lookup is billed at ``price``; errors are not.
    """

    name = "BlacklistAllianceStation"
    Settings = BlacklistAllianceSettings
    vendor_hosts: ClassVar[tuple[str, ...]] = ("api.blacklistalliance.net",)
    vendor: ClassVar[str] = "Blacklist Alliance"
    key_env: ClassVar[str] = "BLACKLIST_ALLIANCE_KEY"
    invalid_reason: ClassVar[str] = "Blacklist Alliance: the number is not valid"

    def credentials(self) -> Credentials:
        """The key as the ``key`` query parameter (the vendor's design)."""
        from waystation.http import Credentials

        return Credentials(params={"key": self.key()})

    async def lookup(self, http: VendorClient, number: str) -> VendorResponse:
        """``GET /lookup?ver=v5&resp=json&phone=...``."""
        return await http.get("lookup", params={"ver": "v5", "resp": "json", "phone": number})

    async def lists_of(self, resp: VendorResponse, number: str) -> list[str] | None:
        """The lists of the answer; plain-text "API Key Not Found" / "Access denied" are auth errors."""
        text = resp.text().strip()
        low = text.lower()
        if not text.startswith("{"):
            if "key not found" in low or "access denied" in low or "invalid key" in low:
                raise AuthError(f"Blacklist Alliance refused the key ({text[:60]!r}): check BLACKLIST_ALLIANCE_KEY "
                                "and the account's IP whitelist")
            resp.raise_for_status(auth_hint="check BLACKLIST_ALLIANCE_KEY")
            raise BadResponse(f"Blacklist Alliance answered HTTP {resp.status} with a body that is not JSON")
        resp.raise_for_status(auth_hint="check BLACKLIST_ALLIANCE_KEY")
        answer = await resp.parse(BlacklistAnswer)
        if (answer.status or "").lower() != "success":
            detail = (answer.message or "")[:120]
            if "key" in detail.lower():
                raise AuthError(f"Blacklist Alliance refused the key ({detail!r})")
            raise PermanentError(f"Blacklist Alliance answered status {answer.status!r} ({detail!r})")
        message = (answer.message or "").strip()
        if not message:
            raise ServerError("Blacklist Alliance answered without a message (Good / Blacklisted / ...)", status=200)
        codes = [c.strip().lower() for c in (answer.code or "").split(",")]
        lists: list[str] = []
        for code in codes:
            if code and code != "none":
                name = list_of_code(code)
                if name not in lists:
                    lists.append(name)
        if message.lower() != "good" and not lists:
            # listed without a code we can name: fail closed, under the message's own name
            lists.append(MESSAGE_LISTS.get(message.lower(), message.lower()))
        return lists  # codes on a "Good" answer still count: a listed code is never let through
