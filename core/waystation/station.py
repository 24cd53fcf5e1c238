"""Station, Outcome, Stop and the step context: the contract a plugin writes against."""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from waystation.resilience.policies import BreakerPolicy, RateLimit, RetryPolicy

if TYPE_CHECKING:
    from waystation.budget import Budget


class Stop(enum.StrEnum):
    """What the route does after a step: go on, stop early keeping the data, or fail the lead."""

    CONTINUE = "continue"
    SKIP_REMAINING = "skip_remaining"
    FAIL = "fail"

    @property
    def severity(self) -> int:
        """0 for CONTINUE, 1 for SKIP_REMAINING, 2 for FAIL: the most severe answer wins."""
        return _SEVERITY[self]


_SEVERITY = {Stop.CONTINUE: 0, Stop.SKIP_REMAINING: 1, Stop.FAIL: 2}


class Outcome(BaseModel):
    """What a step returns: the fields it adds, the cost it really incurred, and a stop decision.

    ``Outcome({"phone": "+14155550100"}, cost=0.01)``. A field whose value is ``None`` means
    "looked, found nothing" and is not merged. ``misses`` may say, per field, why no value was
    found (it is kept in the step's record). ``clear`` names declared fields to *remove* from the
    lead (e.g. an input phone that is not a real number, so no later step pays to look it up).
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    fields: dict[str, Any] = Field(default_factory=dict)
    cost: float = Field(default=0.0, ge=0)
    stop: Stop = Stop.CONTINUE
    reason: str | None = None
    misses: dict[str, str] = Field(default_factory=dict)
    clear: tuple[str, ...] = ()

    def __init__(
        self,
        fields: Mapping[str, Any] | None = None,
        cost: float = 0.0,
        stop: Stop = Stop.CONTINUE,
        reason: str | None = None,
        misses: Mapping[str, str] | None = None,
        clear: tuple[str, ...] | list[str] = (),
        **extra: Any,
    ) -> None:
        super().__init__(
            fields=dict(fields or {}), cost=cost, stop=stop, reason=reason, misses=dict(misses or {}),
            clear=tuple(clear), **extra,
        )

    @property
    def hit(self) -> bool:
        """Whether the step provided at least one value."""
        return any(v is not None for v in self.fields.values())


#: Largest secret file read through a ``<VARIABLE>_FILE`` environment variable.
MAX_SECRET_FILE = 64 * 1024


def _is_secret(field: FieldInfo) -> bool:
    ann = field.annotation
    return ann is SecretStr or SecretStr in getattr(ann, "__args__", ())


def _env_names(settings_cls: type[BaseSettings], name: str, field: FieldInfo) -> list[tuple[str, str]]:
    """(environment variable, key to return the value under) for a field: its aliases, then
    ``env_prefix`` + name."""
    alias = field.validation_alias
    out: list[tuple[str, str]] = []
    if isinstance(alias, str):
        out.append((alias, alias))
    elif isinstance(alias, AliasChoices):
        out += [(c, c) for c in alias.choices if isinstance(c, str)]
    prefix = str(settings_cls.model_config.get("env_prefix") or "")
    key = out[0][1] if out else name
    out.append((prefix + name, key))
    return out


class SecretFiles(PydanticBaseSettingsSource):
    """Secrets from files: for a secret field read from the variable ``API_KEY``, the variable
    ``API_KEY_FILE`` may name a file holding it (Docker / Kubernetes secrets). The file's content,
    without its trailing newline, is the value; the variable itself still wins when both are set."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # pragma: no cover - __call__ does the work

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        env = {k.upper(): v for k, v in os.environ.items()}
        for name, field in self.settings_cls.model_fields.items():
            if not _is_secret(field):
                continue
            for var, key in _env_names(self.settings_cls, name, field):
                path = env.get(var.upper() + "_FILE")
                if not path:
                    continue
                try:
                    with open(path, "rb") as f:
                        raw = f.read(MAX_SECRET_FILE + 1)
                except OSError as exc:
                    raise ValueError(f"{var.upper()}_FILE: cannot read {path}: {exc.strerror or exc}") from None
                if len(raw) > MAX_SECRET_FILE:
                    raise ValueError(f"{var.upper()}_FILE: {path} is larger than {MAX_SECRET_FILE:,} bytes")
                out[key] = raw.decode("utf-8", "strict").rstrip("\r\n")
                break
        return out


class StationSettings(BaseSettings):
    """Base class of a station's settings: filled from the route step's ``settings:`` first, then
    from environment variables (``env_prefix`` per station, or a field's own alias), then, for
    secrets, from the file a ``<VARIABLE>_FILE`` variable names (:class:`SecretFiles`).

    Declare secrets as :class:`pydantic.SecretStr`: their value is never printed, logged, stored in
    a checkpoint, or left in an error message (the engine redacts it from every text it records).
    """

    model_config = SettingsConfigDict(extra="forbid", frozen=True, env_ignore_empty=True)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Route settings, then the environment, then secret files (``<VARIABLE>_FILE``)."""
        return init_settings, env_settings, dotenv_settings, SecretFiles(settings_cls), file_secret_settings

    def model_post_init(self, context: Any, /) -> None:
        """Register the secret values so that no log record of the process shows them."""
        from waystation.redact import protect

        protect(self.secret_values())

    def secret_values(self) -> list[str]:
        """The plain values of every secret field (used to redact them from texts)."""
        out: list[str] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                plain = value.get_secret_value()
                if plain:
                    out.append(plain)
        return out


InDoubtPolicy = Literal["recheck", "repay", "skip"]


class Station:
    """Base class of every station. Subclass it, set the class attributes, write ``process``.

    Class attributes:

    - ``name``: the unique name a route refers to (e.g. ``"TelnyxGatekeepStation"``).
    - ``requires``: fields that must be present for the step to run.
    - ``provides``: field name → Python type of every field it may add (checked on each outcome).
    - ``optional``: fields it uses when some step in the route provides them; it waits for them.
    - ``cost``: declared price per call in USD (reserved against the budget before the call).
    - ``timeout``: seconds per attempt (``None``: no timeout).
    - ``retry`` / ``breaker`` / ``rate_limit``: resilience defaults (a route step may override).
    - ``in_doubt``: on resume, what to do with a call whose result was lost in a crash.
    - ``Settings``: the pydantic settings model of the station.
    - ``paid``: whether it calls a paid vendor (defaults to ``cost > 0``).
    - Lookup cache (see :mod:`waystation.cache` and docs/cost.md): ``cache_ttl``, the default TTL
      of a cached answer (``"30d"``, seconds; ``None``: cached only where a route step sets
      ``cache: {ttl: ...}``); ``cacheable = False`` for a station whose answer must never be reused;
      ``cache_misses = True`` when a reasoned miss ("no phone found") is a stable answer worth
      caching; ``cache_settings``, the settings that change the answer (``None``: every non-secret
      setting); ``cache_version``, bumped when the answer's meaning changes.
    - ``hit_prior``: the probability of a hit ``waystation estimate`` assumes before any history.
    - ``side_effects = True`` for a station whose call changes something outside the lead (saves
      rows, sends messages): ``waystation estimate`` never runs it, even when it is free.
    - ``gate``: whether later steps rely on its verdict (a DNC scrub, a phone gate): a gate that
      cannot run holds the lead instead of letting it through (see :mod:`waystation.gates`).
    - ``required_settings``: settings that must have a value for the station to work (e.g. an API
      key); a missing one is refused before any lead runs, naming its environment variable.
    - ``data_settings``: settings naming data files or directories; a relative path written in a
      route is resolved against the route file's folder.

    ``preflight()`` may check more, cheaply and without calling a vendor (e.g. that a data file
    exists); it runs before any lead does.

    ``process(ctx)`` must not mutate anything it is given and must return an :class:`Outcome`.
    Import heavy dependencies (HTTP clients, parsers, drivers) inside methods or in ``open()`` so
    that listing stations and checking routes stays fast.
    """

    name: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()
    provides: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    optional: ClassVar[tuple[str, ...]] = ()
    cost: ClassVar[float] = 0.0
    paid: ClassVar[bool | None] = None
    timeout: ClassVar[float | None] = 30.0
    retry: ClassVar[RetryPolicy] = RetryPolicy()
    breaker: ClassVar[BreakerPolicy | None] = None
    rate_limit: ClassVar[RateLimit | None] = None
    in_doubt: ClassVar[InDoubtPolicy] = "repay"
    gate: ClassVar[bool] = False
    required_settings: ClassVar[tuple[str, ...]] = ()
    data_settings: ClassVar[tuple[str, ...]] = ()
    Settings: ClassVar[type[StationSettings]] = StationSettings
    cache_ttl: ClassVar[str | float | None] = None
    cacheable: ClassVar[bool] = True
    cache_misses: ClassVar[bool] = False
    cache_settings: ClassVar[tuple[str, ...] | None] = None
    cache_version: ClassVar[str] = "1"
    hit_prior: ClassVar[float | None] = None
    side_effects: ClassVar[bool] = False

    def __init__(self, settings: StationSettings | None = None) -> None:
        self.settings: StationSettings = settings if settings is not None else type(self).Settings()

    @classmethod
    def declared_cost(cls, settings: StationSettings) -> float:
        """The price reserved against the budget before each call (USD).

        Defaults to ``cost``; override it when the price depends on settings (which data sets a
        lookup asks for, a negotiated price). A route step's ``cost:`` still takes precedence.
        """
        return cls.cost

    @classmethod
    def is_paid(cls) -> bool:
        """Whether a call may cost money (``paid`` if set, else ``cost > 0``)."""
        return cls.paid if cls.paid is not None else cls.cost > 0

    def preflight(self) -> list[str]:
        """Problems that stop this station from working, found cheaply before any lead runs (no
        vendor call, no network): one line each, saying what to do. Default: none."""
        return []

    async def open(self) -> None:
        """Called once before the first lead runs through this station (create clients here)."""

    async def close(self) -> None:
        """Called once when the engine is closed (close clients here)."""

    async def process(self, ctx: StepContext) -> Outcome:
        """Do the station's work for one lead and return its :class:`Outcome`."""
        raise NotImplementedError(f"{type(self).__name__}.process")

    async def recheck(self, ctx: StepContext) -> Outcome | None:
        """For ``in_doubt: recheck``: ask a free status endpoint or a cache what a lost call
        returned. ``None`` means it cannot tell (the step is then skipped with ``in_doubt``)."""
        return None


class StepContext:
    """What a station sees of one lead during one step.

    ``data`` is a read-only mapping of the lead as it stood when the step's dependencies ended.
    """

    __slots__ = ("attempt", "budget", "data", "lead_id", "route", "run_id", "settings", "step_id")

    def __init__(
        self,
        data: Mapping[str, Any],
        *,
        lead_id: str,
        step_id: str,
        route: str,
        run_id: str | None,
        settings: StationSettings,
        budget: Budget | None,
        attempt: int = 1,
    ) -> None:
        self.data: Mapping[str, Any] = MappingProxyType(dict(data)) if not isinstance(
            data, MappingProxyType) else data
        self.lead_id = lead_id
        self.step_id = step_id
        self.route = route
        self.run_id = run_id
        self.settings = settings
        self.budget = budget
        self.attempt = attempt

    @property
    def log(self) -> logging.Logger:
        """A logger named after the step (``waystation.station.<step id>``)."""
        return logging.getLogger(f"waystation.station.{self.step_id}")

    def get(self, field: str, default: Any = None) -> Any:
        """The value of ``field``, or ``default`` when it is missing or empty."""
        value = self.data.get(field)
        return default if value is None or value == "" else value

    def __repr__(self) -> str:
        return f"<StepContext lead={self.lead_id} step={self.step_id} attempt={self.attempt}>"
