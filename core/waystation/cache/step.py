"""The engine's side of the lookup cache: which steps are cached, and how, and the lookup/store.

A step is cached when it has a TTL — its own ``cache: {ttl: 30d}`` or its station's
``cache_ttl`` — and its station is not declared ``cacheable = False``, and its *mode* is not
``off``. The mode is the most restrictive of the step's ``cache: {mode: ...}`` (or
``cache: off``), the route's ``cache:`` key and the run's ``--cache`` flag, each ``off`` <
``read`` < ``read-write``; unset everywhere means ``read-write``. ``read`` uses entries but
writes none.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from waystation.cache import CacheEntry, CacheMode, LookupCache, parse_ttl
from waystation.cache.keys import answer_settings, cache_key, normalised_inputs, subject_tokens
from waystation.station import Outcome, Stop

if TYPE_CHECKING:
    from waystation.plan import Plan, PlannedStep
    from waystation.plugins import PluginHost

log = logging.getLogger("waystation.cache")

_RANK: dict[str, int] = {"off": 0, "read": 1, "read-write": 2}


@dataclass(frozen=True)
class StepCachePolicy:
    """How one step uses the cache: TTL (s), mode, whether misses are stored, and what its key reads."""

    station: str
    version: str
    ttl: float
    mode: CacheMode
    misses: bool
    settings: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()

    @property
    def writes(self) -> bool:
        """Whether answers are stored."""
        return self.mode == "read-write"

    def key(self, data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The cache key of the lookup this step would make for ``data``, and the normalised inputs."""
        inputs = normalised_inputs(data, self.inputs)
        return cache_key(self.station, self.version, self.settings, inputs), inputs


def _mode(*modes: str | None) -> str:
    given = [m for m in modes if m is not None]
    return min(given, key=_RANK.__getitem__) if given else "read-write"


def step_policy(ps: PlannedStep, host: PluginHost | None, *, route_mode: str | None = None,
                run_mode: str | None = None) -> StepCachePolicy | None:
    """The cache policy of ``ps``, or ``None`` when it is not cached (see the module docstring)."""
    cls = ps.station
    if cls is None or not cls.cacheable:
        return None
    spec = ps.spec.cache
    raw = spec.ttl if spec is not None and spec.ttl is not None else cls.cache_ttl
    if raw is None:
        return None
    mode = _mode(spec.mode if spec is not None else None, route_mode, run_mode)
    if mode == "off":
        return None
    info = host.stations.get(cls.name) if host is not None else None
    version = f"{info.version if info is not None else ''}:{cls.cache_version}"
    return StepCachePolicy(station=cls.name, version=version, ttl=parse_ttl(raw), mode=mode,  # type: ignore[arg-type]
                           misses=cls.cache_misses, settings=answer_settings(ps.settings, cls.cache_settings),
                           inputs=tuple(dict.fromkeys((*cls.requires, *cls.optional))))


def cache_policies(plan: Plan, host: PluginHost | None, run_mode: str | None = None) -> dict[str, StepCachePolicy]:
    """The policy of every cached step of ``plan``, by step id."""
    route_mode = plan.route.spec.cache
    out = {}
    for ps in plan.steps:
        pol = step_policy(ps, host, route_mode=route_mode, run_mode=run_mode)
        if pol is not None:
            out[ps.id] = pol
    return out


class StepCache:
    """Looks answers up and stores them for the cached steps of one plan (used by the engine).

    A cache that fails (Redis down, a locked file) never fails a lead: a failed lookup is a miss,
    a failed store is logged; both are added to the lead's errors by the engine."""

    def __init__(self, cache: LookupCache, policies: Mapping[str, StepCachePolicy]) -> None:
        self.cache = cache
        self.policies = dict(policies)

    async def lookup(self, ps: PlannedStep, data: Mapping[str, Any]) -> tuple[Outcome, float] | None:
        """A fresh cached answer for this step and lead as ``(outcome, age)``, or ``None``."""
        pol = self.policies.get(ps.id)
        if pol is None:
            return None
        key, _ = pol.key(data)
        entry = await self.cache.get(pol.station, key)
        if entry is None:
            return None
        out = Outcome(entry.fields, cost=0.0, stop=Stop(entry.stop), reason=entry.reason, misses=entry.misses,
                      clear=entry.clear)
        return out, entry.age(self.cache.clock())

    async def store(self, ps: PlannedStep, data: Mapping[str, Any], outcome: Outcome,
                    lead_id: str | None = None) -> bool:
        """Store a vendor's successful answer: a hit always, a miss only when the station declares
        misses stable. Returns whether it was stored."""
        pol = self.policies.get(ps.id)
        if pol is None or not pol.writes:
            return False
        fields = {k: v for k, v in outcome.fields.items() if v is not None}
        if not fields and not pol.misses:
            return False
        key, _ = pol.key(data)
        now = self.cache.clock()
        entry = CacheEntry(station=pol.station, fields=fields, stored_at=now, expires_at=now + pol.ttl,
                           misses=dict(outcome.misses), stop=outcome.stop.value, reason=outcome.reason,
                           clear=tuple(outcome.clear), subjects=subject_tokens(data, fields, lead_id=lead_id))
        await self.cache.put(key, entry)
        return True
