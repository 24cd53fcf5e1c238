"""Compiling a route against the known stations into a :class:`Plan`.

Every static error is found here, before any lead runs, with the route file, line and column:
an unknown station (with the closest name), a required field that neither the input nor an
earlier step provides, a cycle, two steps that can run in parallel and provide the same field, a
malformed condition, settings or policies that do not validate, an ``after:`` naming no step.

Dependencies point backwards in route order: a step depends on every *earlier* step that provides
a field it requires, optionally uses, or tests in its condition; on the step before it when it is
a ``fallback``; and on the steps named in ``after:``. Outcomes are merged in route order, so a
lead's result never depends on timing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from waystation.catalogue import Suggestion
from waystation.conditions import Condition, parse_condition
from waystation.errors import ConditionSyntaxError, Problem, RouteError
from waystation.lead import STANDARD_INPUT_FIELDS
from waystation.limits import MAX_NAME_LENGTH, MAX_REPORTED_ERRORS, field_name_problem
from waystation.resilience.policies import BreakerPolicy, RateLimit, RetryPolicy
from waystation.route import Route, StepSpec
from waystation.station import InDoubtPolicy, Station, StationSettings

_STEP_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_OUTCOME_MODELS: dict[type[Station], type[BaseModel]] = {}


def outcome_model(station: type[Station]) -> type[BaseModel]:
    """A strict pydantic model of the fields ``station`` declares it provides (None allowed)."""
    model = _OUTCOME_MODELS.get(station)
    if model is None:
        model = _OUTCOME_MODELS[station] = _build_outcome_model(station)
    return model


def _build_outcome_model(station: type[Station]) -> type[BaseModel]:
    fields: dict[str, Any] = {name: (tp | None, None) for name, tp in station.provides.items()}
    return create_model(
        f"{station.__name__}Outcome",
        __config__=ConfigDict(extra="forbid", strict=True, arbitrary_types_allowed=True),
        **fields,
    )


@dataclass(eq=False)
class PlannedStep:
    """One step as compiled: its station, settings, policies, condition and dependencies.

    Hooks receive it as ``step``: ``.id``, ``.station`` (the class), ``.index`` (route order).
    """

    id: str
    index: int
    spec: StepSpec
    station: type[Station] | None
    settings: StationSettings | None = None
    enabled: bool = True
    condition: Condition | None = None
    fallback_fields: tuple[str, ...] = ()
    deps: tuple[int, ...] = ()
    ancestors: tuple[int, ...] = ()
    dependents: tuple[int, ...] = ()
    level: int = 0
    requires: tuple[str, ...] = ()
    #: fields the step waits for when an earlier step provides them (the station's ``optional``
    #: plus the fields its condition tests)
    optional: tuple[str, ...] = ()
    provides: Mapping[str, Any] = field(default_factory=dict)
    cost: float = 0.0
    timeout: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerPolicy | None = None
    rate_limit: RateLimit | None = None
    in_doubt: InDoubtPolicy = "repay"
    on_error: str = "continue"
    secrets: tuple[str, ...] = ()
    gate: bool = False

    @property
    def uses(self) -> tuple[str, ...]:
        """Deprecated spelling of :attr:`optional` (kept for one release)."""
        import warnings

        warnings.warn("PlannedStep.uses is deprecated: use PlannedStep.optional", DeprecationWarning, stacklevel=2)
        return self.optional

    @property
    def installed(self) -> bool:
        """Whether the step's station is installed."""
        return self.station is not None

    @property
    def runnable(self) -> bool:
        """Whether the step can run at all (enabled and installed)."""
        return self.enabled and self.station is not None

    @property
    def paid(self) -> bool:
        """Whether a call costs money (intents are recorded before paid calls)."""
        return self.station is not None and (self.cost > 0 or self.station.is_paid())

    def __repr__(self) -> str:
        return f"<PlannedStep {self.id} ({self.spec.station}) level={self.level}>"


@dataclass
class Plan:
    """A compiled route: steps in route order, grouped into levels that can run concurrently."""

    route: Route
    steps: list[PlannedStep]
    levels: list[list[PlannedStep]]
    input_fields: frozenset[str]
    warnings: list[Problem] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The route's name."""
        return self.route.name

    @property
    def budget(self) -> float | None:
        """The per-lead budget (USD), if any."""
        return self.route.spec.budget

    def step(self, step_id: str) -> PlannedStep:
        """The step with id ``step_id``."""
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def requirements(self) -> set[str]:
        """Input fields some runnable step requires that no earlier step provides."""
        provided: set[str] = set()
        needed: set[str] = set()
        for s in self.steps:
            if not s.runnable:
                continue
            needed.update(f for f in s.requires if f not in provided)
            provided.update(s.provides)
        return needed

    def level_lines(self) -> list[str]:
        """One line per level, for people: ``level 1: Income [$0.01; if zipcode exists] | ...``."""
        lines = []
        for lvl, steps in enumerate(self.levels):
            parts = []
            for s in steps:
                tag = "" if s.runnable else (" (disabled)" if s.installed else " (not installed)")
                extra = []
                if s.cost:
                    extra.append(f"${s.cost:g}")
                if s.spec.condition:
                    extra.append(f"if {s.spec.condition}")
                if s.fallback_fields:
                    extra.append(f"fallback for {', '.join(s.fallback_fields)}")
                parts.append(s.id + tag + (f" [{'; '.join(extra)}]" if extra else ""))
            lines.append(f"level {lvl}: " + " | ".join(parts))
        return lines

    def describe(self) -> list[dict[str, Any]]:
        """The plan as data (for ``waystation check --json`` and ``run --dry-run``)."""
        out = []
        for lvl, steps in enumerate(self.levels):
            for s in steps:
                out.append({
                    "level": lvl, "id": s.id, "station": s.spec.station, "enabled": s.enabled,
                    "installed": s.installed, "after": [self.steps[d].id for d in s.deps],
                    "requires": list(s.requires), "provides": list(s.provides), "cost": s.cost,
                    "condition": s.spec.condition, "fallback": list(s.fallback_fields) or None,
                })
        return out


def _merge_policy(model: type[BaseModel], base: BaseModel | None, override: Mapping[str, Any] | None) -> Any:
    data = base.model_dump() if base is not None else {}
    data.update(override or {})
    return model.model_validate(data)


def resolve_data_paths(cls: type[Station], values: Mapping[str, Any], folder: str | None
                       ) -> dict[str, Any]:
    """``values`` with the relative paths of ``cls.data_settings`` resolved against ``folder``
    (the route file's: a route run from any directory reads the same files)."""
    out = dict(values)
    if not folder:
        return out
    base = Path(folder)

    def fix(v: Any) -> Any:
        if isinstance(v, str) and v and "://" not in v and not Path(v).expanduser().is_absolute():
            return str(base / v)
        return v

    for key in cls.data_settings:
        if key in out:
            v = out[key]
            out[key] = [fix(x) for x in v] if isinstance(v, list) else fix(v)
    return out


def _settings_for(cls: type[Station], values: Mapping[str, Any]) -> StationSettings:
    return cls.Settings(**dict(values))


class StationSource(Protocol):
    """What compiling a route needs from the plugin host: look a station up by name, and a
    "did you mean" for one that is not there. :class:`waystation.plugins.PluginHost` is one; the
    plan never imports it (the host loads plugins, the plan is below it)."""

    @property
    def stations(self) -> Mapping[str, object]:
        """Every installed station by name."""
        ...

    def get(self, name: str) -> type[Station] | None:
        """The station class called ``name``, or ``None``."""
        ...

    def suggestion(self, name: str) -> Suggestion | None:
        """A near name or a catalogue entry for an unknown station, or ``None``."""
        ...


class _Compiler:
    def __init__(self, route: Route, host: StationSource, input_fields: Iterable[str] | None) -> None:
        self.route = route
        self.host = host
        self.problems: list[Problem] = []
        self.dropped = 0  # problems beyond what is reported (counted, not kept)
        self.warnings: list[Problem] = list(route.warnings)
        #: enabled steps whose station is unknown (step id -> the name suggested): errors that
        #: follow from them (an ``after:`` naming the misspelt id, a field only they would
        #: provide) are not reported again, so one typo gives one error.
        self.unknown: dict[str, str | None] = {}
        declared = route.spec.input
        if input_fields is not None:
            self.inputs = frozenset(input_fields)
        elif declared is not None:
            self.inputs = frozenset(declared)
        else:
            self.inputs = STANDARD_INPUT_FIELDS

    def err(self, message: str, *loc: str | int, column_offset: int | None = None) -> None:
        if len(self.problems) > MAX_REPORTED_ERRORS:
            self.dropped += 1
            return
        self.problems.append(self.route.problem(message, *loc, column_offset=column_offset))

    def compile(self) -> Plan:
        steps = [self._step(i, spec) for i, spec in enumerate(self.route.spec.steps)]
        self.route_steps = steps
        self._ids(steps)
        self._dependencies(steps)
        if not self.problems:
            self._order(steps)
        if not self.problems:
            self._conflicts(steps)
        if self.problems:
            raise RouteError(self.problems, len(self.problems) + self.dropped)
        levels: list[list[PlannedStep]] = [[] for _ in range(max((s.level for s in steps), default=0) + 1)]
        for s in steps:
            levels[s.level].append(s)
        for s in steps:  # a key allowed to go elsewhere than its vendor is never silent
            if (notice := credential_override(s)) is not None:
                self.warnings.append(self.route.problem(notice, "steps", s.index, "settings"))
        plan = Plan(self.route, steps, levels, self.inputs, self.warnings)
        if problems := cache_problems(plan):  # a step cached against its station's word
            raise RouteError(problems)
        return plan

    def _step(self, i: int, spec: StepSpec) -> PlannedStep:
        loc = ("steps", i)
        cls = self.host.get(spec.station)
        ps = PlannedStep(id=spec.step_id, index=i, spec=spec, station=cls, enabled=spec.enabled,
                         on_error=spec.on_error)
        ps.gate = bool(spec.gate if spec.gate is not None else (cls.gate if cls is not None else False))
        if cls is None:
            found = self.host.suggestion(spec.station)
            msg = f"unknown station {spec.station!r}" + (f" ({found.hint(spec.station)})" if found else "")
            if not self.host.stations and found is None:
                msg += " (no station is installed: pip install a waystation plugin)"
            if found is not None and not found.installed and found.name == spec.station:
                msg = f"station {spec.station!r} is not installed ({found.hint(spec.station)})"
            if spec.enabled:
                self.unknown[spec.step_id] = found.name if found else None
            if spec.enabled:
                self.err(msg, *loc, "station")
            else:
                self.warnings.append(self.route.problem(f"{msg}; the step is disabled, so it is skipped "
                                                        "as not installed", *loc, "station"))
        else:
            for fname in cls.provides:
                problem = field_name_problem(fname)
                if problem:
                    self.err(f"station {spec.station} provides a bad field: {problem}", *loc, "station")
            ps.requires = tuple(cls.requires)
            ps.provides = dict(cls.provides)
            ps.cost = spec.cost if spec.cost is not None else cls.cost
            ps.timeout = spec.timeout if spec.timeout is not None else cls.timeout
            ps.in_doubt = spec.in_doubt or cls.in_doubt
            try:
                ps.settings = _settings_for(cls, resolve_data_paths(cls, spec.settings, self.route.data_dir))
                ps.secrets = tuple(ps.settings.secret_values())
                if spec.cost is None:
                    ps.cost = float(cls.declared_cost(ps.settings))
            except ValidationError as exc:
                for e in exc.errors():
                    where = ".".join(str(p) for p in e["loc"]) or "settings"
                    self.err(f"settings of {spec.station}: {where}: {e['msg']}", *loc, "settings",
                             *[str(p) for p in e["loc"]])
            except Exception as exc:
                self.err(f"settings of {spec.station}: {exc}", *loc, "settings")
            for key, model, base in (("retry", RetryPolicy, cls.retry), ("rate_limit", RateLimit, cls.rate_limit)):
                try:
                    setattr(ps, key, _merge_policy(model, base, getattr(spec, key))
                            if (base is not None or getattr(spec, key)) else None)
                except ValidationError as exc:
                    for e in exc.errors():
                        self.err(f"{key}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}", *loc, key)
            if ps.retry is None:
                ps.retry = RetryPolicy()
            if spec.breaker is not False:
                try:
                    if cls.breaker is not None or spec.breaker:
                        ps.breaker = _merge_policy(BreakerPolicy, cls.breaker, spec.breaker or None)
                except ValidationError as exc:
                    for e in exc.errors():
                        where = ".".join(str(p) for p in e["loc"])
                        self.err(f"breaker: {where}: {e['msg']}", *loc, "breaker")
        uses = set(cls.optional) if cls else set()
        if spec.condition is not None:
            try:
                ps.condition = parse_condition(spec.condition)
                uses |= ps.condition.fields
            except ConditionSyntaxError as exc:
                pos = self.route.position(*loc, "condition")
                col = pos[1] + exc.column - 1 if pos else None
                shown = spec.condition if len(spec.condition) <= 200 else spec.condition[:200] + "..."
                self.problems.append(Problem(f"malformed condition: {exc.reason} (column {exc.column} of "
                                             f"{shown!r})", self.route.file,
                                             pos[0] if pos else None, col))
        ps.optional = tuple(sorted(uses - set(ps.requires)))
        return ps

    def _ids(self, steps: list[PlannedStep]) -> None:
        seen: dict[str, int] = {}
        for s in steps:
            if s.spec.id is not None and (len(s.id) > MAX_NAME_LENGTH or not _STEP_ID.fullmatch(s.id)):
                self.err(f"step id {s.id[:40]!r} must be identifier-like (letters, digits, '_', '-', '.'; "
                         f"at most {MAX_NAME_LENGTH} characters): it names metrics and output", "steps", s.index, "id")
            if s.id in seen:
                self.err(f"step id {s.id!r} is used twice (also step {seen[s.id] + 1}); give one an id:",
                         "steps", s.index, "id" if s.spec.id else "station")
            seen[s.id] = s.index

    def _dependencies(self, steps: list[PlannedStep]) -> None:
        by_id = {s.id: s for s in steps}
        providers: dict[str, list[int]] = {}
        gates: list[int] = []
        for s in steps:
            deps: set[int] = set(gates)  # every later step waits for a gate's verdict
            loc = ("steps", s.index)
            if s.runnable:
                for f in s.requires:
                    earlier = providers.get(f, [])
                    deps.update(earlier)
                    if not earlier and f not in self.inputs and not self._after_unknown(s):
                        later = [t.id for t in steps[s.index + 1:] if t.runnable and f in t.provides]
                        hint = (f"; step {later[0]!r} provides it but comes later — move it before"
                                if later else "; no step provides it and it is not an input field "
                                "(list it under 'input:' if the lead file has it)")
                        self.err(f"step {s.id!r} requires field {f!r}{hint}", *loc, "station")
                for f in s.optional:
                    deps.update(providers.get(f, []))
                if s.spec.fallback:
                    if s.index == 0:
                        self.err("fallback: the first step has no step before it to fall back from",
                                 *loc, "fallback")
                    else:
                        prev = steps[s.index - 1]
                        deps.add(prev.index)
                        if isinstance(s.spec.fallback, list):
                            s.fallback_fields = tuple(s.spec.fallback)
                        else:
                            shared = [f for f in prev.provides if f in s.provides]
                            s.fallback_fields = tuple(shared or prev.provides or s.provides)
                        if not s.fallback_fields:
                            self.err(f"fallback: cannot tell which fields step {prev.id!r} was to provide; "
                                     "list them (fallback: [phone])", *loc, "fallback")
            for j, name in enumerate(s.spec.after):
                target = by_id.get(name)
                if target is None and name in self.unknown.values():
                    continue  # `after: TheRightName` where the step itself misspells it: one error
                if target is None:
                    import difflib
                    close = difflib.get_close_matches(name, list(by_id), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    self.err(f"after: no step has id {name!r}{hint}", *loc, "after", j)
                elif target is s:
                    self.err("after: a step cannot come after itself", *loc, "after", j)
                else:
                    deps.add(target.index)
            s.deps = tuple(sorted(deps))
            if s.runnable and s.gate:
                gates.append(s.index)
            if s.runnable:
                for f in s.provides:
                    providers.setdefault(f, []).append(s.index)

    def _after_unknown(self, s: PlannedStep) -> bool:
        """Whether an enabled step before ``s`` names an unknown station (whose fields are unknown)."""
        return any(t.id in self.unknown for t in self.route_steps[: s.index])

    def _order(self, steps: list[PlannedStep]) -> None:
        n = len(steps)
        indeg = [len(s.deps) for s in steps]
        children: list[list[int]] = [[] for _ in range(n)]
        for s in steps:
            for d in s.deps:
                children[d].append(s.index)
        queue = [i for i in range(n) if indeg[i] == 0]
        order: list[int] = []
        while queue:
            i = queue.pop(0)
            order.append(i)
            for c in children[i]:
                indeg[c] -= 1
                if indeg[c] == 0:
                    queue.append(c)
        if len(order) < n:
            stuck = [steps[i] for i in range(n) if indeg[i] > 0]
            names = " -> ".join(s.id for s in stuck)
            self.err(f"cycle between steps: {names} (check their 'after:' and fallback)",
                     "steps", stuck[0].index)
            return
        ancestors: list[set[int]] = [set() for _ in range(n)]
        for i in order:
            s = steps[i]
            for d in s.deps:
                ancestors[i] |= ancestors[d] | {d}
            s.level = 1 + max((steps[d].level for d in s.deps), default=-1)
            s.dependents = tuple(sorted(children[i]))
        for s in steps:
            s.ancestors = tuple(sorted(ancestors[s.index]))

    def _conflicts(self, steps: list[PlannedStep]) -> None:
        anc = [set(s.ancestors) for s in steps]
        for a in steps:
            for b in steps[a.index + 1:]:
                if not (a.runnable and b.runnable) or a.index in anc[b.index]:
                    continue
                shared = sorted(set(a.provides) & set(b.provides))
                if shared:
                    self.err(f"steps {a.id!r} and {b.id!r} can run in parallel and both provide "
                             f"{', '.join(shared)}; make one a fallback of the other or order them with "
                             "'after:'", "steps", b.index, "station")


def compile_route(route: Route, host: StationSource, input_fields: Iterable[str] | None = None) -> Plan:
    """Compile ``route`` against the stations known to ``host``; raises :class:`RouteError`."""
    return _Compiler(route, host, input_fields).compile()


def credential_override(step: PlannedStep) -> str | None:
    """The notice for a step whose route lets its key go to hosts besides the station's declared
    vendor hosts (``allow_hosts``), or ``None``."""
    hosts = tuple(getattr(step.settings, "allow_hosts", ()) or ())
    if step.station is None or not step.enabled or not hosts:
        return None
    own = ", ".join(getattr(step.station, "vendor_hosts", ()) or ()) or "none declared"
    return (f"step {step.id!r}: {step.station.name} may send its key to {', '.join(hosts)} (allow_hosts), "
            f"besides its vendor hosts ({own}); http allowed there")


def credential_overrides(plan: Plan) -> list[str]:
    """One line per step with a credential override (see :func:`credential_override`): printed by
    ``waystation check`` and at the start of ``waystation run`` so that it is never silent."""
    return [line for ps in plan.steps if (line := credential_override(ps)) is not None]


def cache_problems(plan: Plan) -> list[Problem]:
    """Route errors: a step asking for a TTL on a station that declares itself never cacheable."""
    out = []
    for i, ps in enumerate(plan.steps):
        spec = ps.spec.cache
        if ps.station is not None and not ps.station.cacheable and spec is not None and spec.ttl is not None:
            out.append(plan.route.problem(f"step {ps.id}: station {ps.station.name} declares that its answers "
                                          "must never be cached", "steps", i, "cache"))
    return out
