"""DialEligibilityStation: the lead's evidence → ``dial_eligible`` (yes / no / unknown) with reasons,
under the policy the route names, and the next permitted calling window.

The rules live in the core (:mod:`waystation.dial`), so an export can re-check a verdict without
this plugin. See ``docs/compliance.md``: this is a tool, not legal advice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict
from waystation import Outcome, RetryPolicy, Station, StationSettings, StepContext
from waystation.dial.evidence import CHECKS, EVIDENCE_FIELD, utcnow
from waystation.dial.evidence import add as add_evidence
from waystation.dial.evidence import make as make_evidence
from waystation.dial.policy import POLICIES, WINDOW_FIELDS, decide, policy
from waystation.dial.windows import RuleTable, load_rules


class DialSettings(StationSettings):
    """Settings of :class:`DialEligibilityStation` (env prefix ``WAYSTATION_DIAL_``)."""

    model_config = SettingsConfigDict(env_prefix="WAYSTATION_DIAL_", extra="forbid", frozen=True,
                                      env_ignore_empty=True)

    policy: str = Field(default="tsr-2025", description=f"The named policy ({', '.join(sorted(POLICIES))}).")
    require: list[str] | None = Field(default=None, description="Replace the policy's required checks.")
    also_require: list[str] = Field(
        default_factory=list, description="Add required checks: state_dnc, litigator, dma, reassigned, line_type.")
    wireless: Literal["consent-required", "ignore"] | None = Field(
        default=None, description="consent-required: a wireless number needs a consent date; ignore: manual dialing.")
    consent_field: str | None = Field(default=None, description="The lead field with the consent date.")
    window: Literal["required", "ignore"] | None = Field(
        default=None, description="Whether a calling window is required for yes.")
    rules_file: Path | None = Field(
        default=None, description="Your own calling-hour table (the shipped one's JSON shape).")
    on_ineligible: Literal["skip_remaining", "fail", "continue"] = Field(
        default="skip_remaining", description="What the route does after a 'no' verdict.")
    on_unknown: Literal["skip_remaining", "fail", "continue"] = Field(
        default="continue", description="What the route does after an 'unknown' verdict.")

    @field_validator("require", "also_require")
    @classmethod
    def _checks(cls, value: list[str] | None) -> list[str] | None:
        for c in value or []:
            if c not in CHECKS:
                raise ValueError(f"unknown check {c!r} (one of {', '.join(CHECKS)})")
        return value

    @field_validator("policy")
    @classmethod
    def _policy(cls, value: str) -> str:
        if value not in POLICIES:
            raise ValueError(f"unknown dial policy {value!r} (known: {', '.join(sorted(POLICIES))})")
        return value


class DialEligibilityStation(Station):
    """Decide whether the lead's phone may be called: ``dial_eligible`` ``yes`` / ``no`` /
    ``unknown`` with ``dial_reasons``, under the named ``policy`` (``tsr-2025``: fresh federal
    registry and internal-list evidence; ``wireless: consent-required``), and the next permitted
    calling window (``dial_window_*``) from the phone's time zone and the state rules.

    Free and offline. Put it after the steps that check the phone (DNC scrub, Telnyx, reassigned
    numbers): it waits for every step that adds ``dial_evidence``. It appends a
    ``calling_window`` evidence item. A ``no`` stops the route (``on_ineligible``), so nothing is
    spent after it; set the DNC step's ``on_listed: continue`` so that listed numbers reach it.
    """

    name = "DialEligibilityStation"
    requires = ()
    optional = ("phone", EVIDENCE_FIELD, "phone_timezone", "phone_timezones", "timezone", "state", "phone_state",
                "consent_date")
    provides = {
        "dial_eligible": str, "dial_reasons": list[str], "dial_policy": str, "dial_checked_at": str,
        "dial_window_start_utc": str, "dial_window_end_utc": str, "dial_window_start_local": str,
        "dial_window_end_local": str, "dial_window_zone": str, "dial_window_rules": str,
        "dial_max_calls_24h": int, EVIDENCE_FIELD: list[dict[str, Any]],
    }
    cost = 0.0
    timeout = 10.0
    retry = RetryPolicy(max_attempts=1)
    Settings = DialSettings

    def __init__(self, settings: StationSettings | None = None) -> None:
        super().__init__(settings)
        cfg = self.config
        self.policy = policy(cfg.policy, require=tuple(cfg.require) if cfg.require is not None else None,
                             also_require=cfg.also_require, wireless=cfg.wireless, consent_field=cfg.consent_field,
                             window=cfg.window)
        self._rules: RuleTable | None = None

    @property
    def config(self) -> DialSettings:
        """The settings, typed."""
        assert isinstance(self.settings, DialSettings)
        return self.settings

    async def open(self) -> None:
        """Load the calling-hour table."""
        self._rules = load_rules(self.config.rules_file)

    async def process(self, ctx: StepContext) -> Outcome:
        """The verdict for this lead, now."""
        if self._rules is None:
            await self.open()
        now = utcnow()
        verdict = decide(ctx.data, self.policy, now, self._rules)
        fields = verdict.fields()
        evidence = ctx.data.get(EVIDENCE_FIELD)
        if verdict.window is not None:
            window = make_evidence(
                "calling_window", "open", station=self.name, phone=ctx.data.get("phone"), checked_at=now,
                expires_at=verdict.window.end, file="state_rules.json" if self.config.rules_file is None
                else self.config.rules_file.name, zones=list(verdict.window.zones), states=verdict.states,
                rules=verdict.window.describe())
            evidence = add_evidence(evidence, [window])
        if evidence is not None:
            fields[EVIDENCE_FIELD] = evidence
        for k in WINDOW_FIELDS:
            if fields.get(k) is None:
                fields.pop(k, None)
        reason = None
        if verdict.eligible != "yes":
            reason = f"dial_eligible={verdict.eligible}: {', '.join(verdict.reasons)}"
        return Outcome(fields, reason=reason)


def verdict_stop(settings: Any, fields: dict[str, Any]) -> tuple[str, str] | None:
    """The (stop, reason) after a verdict under ``on_ineligible`` / ``on_unknown``, or None."""
    verdict = fields.get("dial_eligible")
    mode = getattr(settings, "on_ineligible" if verdict == "no" else "on_unknown", "continue") \
        if verdict in ("no", "unknown") else "continue"
    if mode == "continue":
        return None
    reasons = ", ".join(fields.get("dial_reasons") or [])
    return mode, f"dial_eligible={verdict}: {reasons}"


__all__ = ["DialEligibilityStation", "DialSettings", "verdict_stop"]
