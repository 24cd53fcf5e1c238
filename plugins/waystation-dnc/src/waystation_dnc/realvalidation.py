"""RealValidationDNCStation: the paid alternative to the local store — RealValidation's DNC Lookup API.

``GET {base_url}/DNCLookup.php?phone=2125550123&token=...&output=json`` answers per number
``national_dnc``, ``state_dnc``, ``dma``, ``litigator`` as ``Y`` / ``N`` / ``?`` (``?``: their
lookup timed out) and ``iscell``; ``RESPONSECODE`` is ``OK`` or an error code, ``RESPONSEMSG`` an
(empty) object. More than about 10 calls per second is answered with HTTP 403. The token travels
in the query string (the vendor's design): it is never put in an error message or a log line.

HTTP goes through :mod:`waystation.http` (imported when the station opens): the token is attached
only over https to ``api.realvalidation.com`` (or a host the route allows with ``allow_hosts``),
answers are read capped, statuses other than the vendor's own 403 are mapped by the core.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from waystation import AuthError, PermanentError, QuotaExhaustedError, ThrottledError, TransientError
from waystation.http import error_for_status

from waystation_dnc.api import DncApiSettings, DncApiStation

if TYPE_CHECKING:
    from waystation.http import Credentials, VendorClient, VendorResponse

#: Response flag → the name reported in ``dnc_lists``.
FLAGS = {"national_dnc": "federal", "state_dnc": "state", "dma": "dma", "litigator": "litigator"}

#: The hosts the RealValidation token may be sent to (https only).
VENDOR_HOSTS = ("api.realvalidation.com",)


class RealValidationSettings(DncApiSettings):
    """Settings of :class:`RealValidationDNCStation`.

    The token comes from ``REALVALIDATION_TOKEN`` (or ``token:`` in the route, not recommended);
    every other setting also reads ``WAYSTATION_REALVALIDATION_<NAME>``.
    """

    model_config = SettingsConfigDict(env_prefix="WAYSTATION_REALVALIDATION_", extra="forbid", frozen=True,
                                      populate_by_name=True, env_ignore_empty=True)

    token: SecretStr | None = Field(default=None, validation_alias="REALVALIDATION_TOKEN",
                                    description="RealValidation API token.")
    base_url: str = Field(default="https://api.realvalidation.com/rpvWebService",
                          description="API base URL (tests: 127.0.0.1).")
    price: float = Field(gt=0, description="USD per lookup under your plan (required: RealValidation "
                                           "publishes no list price). It is reserved before each call.")
    lists: list[str] = Field(default_factory=lambda: list(FLAGS.values()),
                             description="Which answers count as listed: federal, state, dma, litigator.")


class RealValidationDNCStation(DncApiStation):
    """Scrub a phone number with RealValidation's DNC Lookup API (federal, state, DMA, litigator).

    Requires ``phone``; provides ``dnc_listed`` and ``dnc_lists`` like the local
    ``DNCScrubStation`` (lists named ``federal``, ``state``, ``dma``, ``litigator``), and follows
    the same ``on_listed`` stop decision. Paid per lookup (``price``); limited to 10 calls per
    second; a ``?`` answer (the vendor's own timeout) and HTTP 403/5xx are retried.
    """

    name = "RealValidationDNCStation"
    Settings = RealValidationSettings
    retry = DncApiStation.retry.model_copy(update={"max_delay": 30.0})
    vendor_hosts: ClassVar[tuple[str, ...]] = VENDOR_HOSTS
    vendor: ClassVar[str] = "RealValidation"
    key_env: ClassVar[str] = "REALVALIDATION_TOKEN"
    key_setting: ClassVar[str] = "token"
    required_settings: ClassVar[tuple[str, ...]] = ("token",)
    invalid_reason: ClassVar[str] = "RealValidation: the number does not exist"

    def credentials(self) -> Credentials:
        """The token as the ``token`` query parameter (the vendor's design)."""
        from waystation.http import Credentials

        return Credentials(params={"token": self.key()})

    async def lookup(self, http: VendorClient, number: str) -> VendorResponse:
        """``GET DNCLookup.php?phone=...&output=json``."""
        return await http.get("DNCLookup.php", params={"phone": number, "output": "json"})

    async def lists_of(self, resp: VendorResponse, number: str) -> list[str] | None:
        """The flags answered ``Y`` among the chosen ``lists``; ``None`` for a number that does not exist."""
        cfg = self.config
        assert isinstance(cfg, RealValidationSettings)
        status, text = resp.status, resp.text()
        if status == 403:
            raise ThrottledError("RealValidation answered 403 (more than 10 calls per second)")
        err = error_for_status(status, {}, vendor="RealValidation", auth_hint="check REALVALIDATION_TOKEN")
        if err is not None:
            raise err
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            lowered = text.strip().lower()
            if "unauthorized" in lowered or ("invalid" in lowered and "token" in lowered):
                raise AuthError("RealValidation refused the token (incorrect token or suspended account)")
            raise PermanentError(f"RealValidation answered something that is not a JSON object: {text[:80]!r}")
        code = str(body.get("RESPONSECODE", "")).strip()
        if code.lower() == "invalid-phone":
            return None
        if code.lower() in ("unauthorized", "102"):
            raise AuthError(f"RealValidation refused the token (code {code})")
        if code.lower() in ("noaccess", "no-credits", "nocredits", "insufficient-credits"):
            raise QuotaExhaustedError(f"RealValidation: {code}")
        if code != "OK":
            raise PermanentError(f"RealValidation answered RESPONSECODE {code!r} for {number}")
        listed: list[str] = []
        for flag, list_name in FLAGS.items():
            value = str(body.get(flag, "")).strip().upper()
            if value == "?":
                raise TransientError(f"RealValidation could not check {flag} (answered '?')")
            if value == "Y" and list_name in cfg.lists:
                listed.append(list_name)
            elif value not in ("Y", "N"):
                raise PermanentError(f"RealValidation answered {flag}={body.get(flag)!r}")
        return listed
