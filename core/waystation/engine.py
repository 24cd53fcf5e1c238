"""Running leads through a compiled route.

One step's life, in order — each arrow is a place a step can end with a status and a reason::

    ready (its dependencies ended) → enabled? → condition? → requirements present? →
    fallback still needed? → reserve budget → breaker closed? → rate limit → record intent →
    call with retry and timeout → validate the outcome → price it (hook) → decide stop (hook) →
    settle budget → checkpoint → after-step hooks;   merged into the lead in route order.

Execution is dependency-driven: a step starts as soon as the steps it depends on have ended (no
level barrier). Each step sees the input plus the outcomes of its ancestors, merged in route
order, so results never depend on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import stamina

from waystation.budget import Budget, from_micros, to_micros
from waystation.deferral import StepDeferred, deferral_for
from waystation.errors import CheckpointFailed, OutcomeValidationError, StepError, VendorTimeout, WaystationError
from waystation.gates import GO, Decision, budget_hold, hold, is_fault
from waystation.hookcall import HookCaller, HookFailure
from waystation.lead import check_fields
from waystation.plan import Plan, PlannedStep, compile_route, outcome_model
from waystation.plugins import PluginHost
from waystation.redact import redact
from waystation.resilience.breaker import BreakerBackend, BreakerState, CircuitBreaker
from waystation.resilience.policies import classify_error, retry_after_of
from waystation.resilience.ratelimit import RateBackend, StationLimiter
from waystation.resilience.redis_shared import (
    REDIS_URL_ENV,
    RedisBreakerBackend,
    RedisConcurrency,
    RedisRateLimiter,
    SharedRedis,
    SharedStateError,
    redis_prefix_from_env,
    redis_url_from_env,
)
from waystation.resilience.throttle import RedisThrottle, Throttle
from waystation.result import LeadResult, Provenance, RunContext, StepRecord
from waystation.route import Route
from waystation.saved import restore_context
from waystation.station import Outcome, Station, StepContext, Stop
from waystation.stepmoney import SHARED, SharedBudget, StepMoney

log = logging.getLogger("waystation.engine")

_PLAIN = (str, int, float, bool)
_GO = GO
_DEFAULTS = "waystation.defaults"


class Checkpointer(Protocol):
    """Where run contexts are saved (see :mod:`waystation.stores`)."""

    async def load(self, run_id: str, lead_id: str) -> dict[str, Any] | None:
        """The saved state of a lead, or ``None``."""
        ...

    async def save(self, run_id: str, lead_id: str, state: dict[str, Any]) -> None:
        """Durably save a lead's state; returns only when it is durable.

        A checkpointer may also offer ``save_nowait(run_id, lead_id, state)``: queue a save in
        order without waiting. The engine uses it after free steps only (a lost free step just
        runs again); paid steps and the end of a lead always wait for ``save``."""
        ...


class NoRoom(StepError):
    """A retry that the budget cannot cover is not made (``batch``: the batch budget lacked room)."""

    category = "budget"

    def __init__(self, message: str, batch: bool = False) -> None:
        super().__init__(message)
        self.batch = batch


class CallCutOff(VendorTimeout):
    """The step's ``timeout`` cut the call off: the vendor may have billed it (it is booked at its
    reservation)."""


class BreakerOpen(WaystationError):
    """The station's breaker opened between two attempts, or while a call waited for its
    rate-limit slot. ``first_attempt``: no call of this step went out at all (it is then skipped
    with reason ``breaker_open``, like a step refused up front)."""

    category = "breaker_open"

    def __init__(self, message: str, first_attempt: bool = False) -> None:
        super().__init__(message)
        self.first_attempt = first_attempt


def lead_id_of(lead: Mapping[str, Any]) -> str:
    """A lead's stable id: its ``id`` field, else a hash of its normalised content."""
    given = lead.get("id")
    if given not in (None, ""):
        return str(given)
    norm = {str(k).strip().lower(): str(v).strip().lower() for k, v in lead.items()
            if v not in (None, "")}
    digest = hashlib.sha256(json.dumps(norm, sort_keys=True).encode()).hexdigest()
    return digest[:20]


def _present(value: Any) -> bool:
    return value is not None and value != ""


def _valid_price(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    price = float(value)
    return price if price >= 0 and price != float("inf") and price == price else None


class Engine:
    """Runs leads through a compiled :class:`~waystation.plan.Plan`.

    ``Engine.from_yaml(path, stations=None)``: ``stations=None`` uses the installed plugins'
    stations; a list uses exactly those (no plugin is loaded), which is how the core is tested.
    Use it as ``async with engine:`` (or call ``close()``) so stations can release clients.
    """

    def __init__(
        self,
        plan: Plan,
        host: PluginHost,
        *,
        checkpointer: Checkpointer | None = None,
        run_id: str | None = None,
        batch_budget: Budget | None = None,
        breaker_backend: BreakerBackend | None = None,
        rate_backend: Callable[[str, Any], RateBackend] | None = None,
        lease_seconds: float = 900.0,
        redis_url: str | None = None,
        redis_prefix: str | None = None,
        shared_budget: SharedBudget | None = None,
        observers: Sequence[object] = (),
        sweep_every: float | None = None,
    ) -> None:
        """Resilience settings: one breaker and one rate limiter per station name, shared by
        every lead. ``breaker_backend`` keeps every breaker's state (default: in memory, or in
        Redis for ``breaker: {shared: redis}``); ``rate_backend(station, policy)`` makes the pacer
        of a ``rate_limit: {shared: redis}`` (default: a Redis GCRA pacer). ``redis_url`` /
        ``redis_prefix`` say where shared state lives (default: ``WAYSTATION_REDIS_URL`` /
        ``WAYSTATION_REDIS_PREFIX``, prefix ``waystation``); a route asking for shared state with
        no URL is refused here, before any lead runs. See :mod:`waystation.resilience.redis_shared`.
        ``shared_budget``: a budget shared with other processes (the worker fleet's), reserved,
        settled and released with the in-process ones.

        ``observers``: objects called like hook implementations for this engine only (one batch's
        report collector and metrics), never registered on the shared plugin manager.
        ``sweep_every``: seconds between sweeps of the batch budget's expired leases (default: a
        quarter of ``lease_seconds``), run while leads are in flight.
        """
        self.plan = plan
        self.host = host
        self.pm = host.pm
        self.checkpointer = checkpointer
        self.run_id = run_id or "default"
        self.batch_budget = batch_budget
        self.lease_seconds = lease_seconds
        self.shared_budget = shared_budget
        self._instances: dict[int, Station] = {}
        self._open_lock = asyncio.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._background: set[asyncio.Future[Any]] = set()
        self._limiters: dict[str, StationLimiter] = {}
        self._throttles: dict[str, Throttle] = {}  # shared pauses after a vendor's 429 + wait
        self._parked: dict[str, dict[str, Any]] = {}  # deferred leads' states when nothing checkpoints
        self.hooks = HookCaller(self.pm, observers)
        self.sweep_every = sweep_every if sweep_every is not None else max(1.0, lease_seconds / 4)
        self._sweeper: asyncio.Task[None] | None = None
        self._running = 0
        # shared (Redis) breaker / rate-limit state: see waystation.resilience.redis_shared
        self._shared_redis: SharedRedis | None = None

        def shared() -> SharedRedis:
            if self._shared_redis is None:
                url = redis_url or redis_url_from_env()
                if not url:
                    raise SharedStateError(
                        f"route {plan.name!r} asks for shared: redis (breaker or rate_limit) but no Redis "
                        f"is configured: pass Engine(redis_url=...) or set {REDIS_URL_ENV}")
                self._shared_redis = SharedRedis(url, redis_prefix or redis_prefix_from_env())
            return self._shared_redis

        for ps in plan.steps:
            if ps.station is None:
                continue
            key = ps.station.name
            if ps.breaker is not None and key not in self._breakers:
                backend = breaker_backend
                if backend is None and ps.breaker.shared == "redis":
                    backend = RedisBreakerBackend(shared())
                self._breakers[key] = CircuitBreaker(key, ps.breaker, backend, self._breaker_changed)
            if ps.rate_limit is not None and key not in self._limiters:
                rb: RateBackend | None = None
                if ps.rate_limit.shared == "redis" and ps.rate_limit.per_second:
                    rb = rate_backend(key, ps.rate_limit) if rate_backend is not None else \
                        RedisRateLimiter(shared(), key, ps.rate_limit.per_second)
                slots = RedisConcurrency(shared(), key, ps.rate_limit.concurrent) \
                    if ps.rate_limit.shared == "redis" and ps.rate_limit.concurrent else None
                self._limiters[key] = StationLimiter(key, ps.rate_limit, rb, slots)
            if key not in self._throttles:
                shares = redis_url is not None or any(
                    p is not None and p.shared == "redis" for p in (ps.rate_limit, ps.breaker))
                self._throttles[key] = Throttle(key, RedisThrottle(shared(), key) if shares else None)
        self.refresh_hooks()

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_route(
        cls,
        route: Route,
        stations: Iterable[type[Station]] | None = None,
        *,
        plugins: Iterable[object] = (),
        host: PluginHost | None = None,
        input_fields: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> Engine:
        """Compile ``route`` and build an engine (see the class docstring for ``stations``)."""
        if host is None:
            if stations is None:
                host = PluginHost.discover()
            else:
                host = PluginHost()
                host.add_stations(stations)
        for i, obj in enumerate(plugins):
            host.pm.register(obj, name=f"extra-{i}-{id(obj)}")
        plan = compile_route(route, host, input_fields)
        return cls(plan, host, **kwargs)

    @classmethod
    def from_yaml(cls, path: str | Path, stations: Iterable[type[Station]] | None = None, **kwargs: Any
                  ) -> Engine:
        """Load, compile and build from a route file."""
        return cls.from_route(Route.from_file(path), stations, **kwargs)

    @classmethod
    def from_text(cls, text: str, stations: Iterable[type[Station]] | None = None, **kwargs: Any) -> Engine:
        """Load, compile and build from YAML text."""
        return cls.from_route(Route.from_text(text, "<string>"), stations, **kwargs)

    def refresh_hooks(self) -> None:
        """Re-read which hooks have implementations (call after registering plugins late)."""
        self.hooks.refresh()
        names = ["before_step", "after_step", "on_step_error", "on_step_skipped", "on_retry",
                 "on_breaker_change", "on_cost", "before_lead", "after_lead"]
        self._active = {n: self.hooks.has(n) for n in names}
        self._custom_price = self.hooks.has("price_step", besides=_DEFAULTS)
        self._custom_stop = self.hooks.has("decide_stop", besides=_DEFAULTS)
        self._screened = self.hooks.has("screen_step")

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every station instance that was opened."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(BaseException):
                await self._sweeper
            self._sweeper = None
        instances, self._instances = self._instances, {}
        for inst in instances.values():
            try:
                await inst.close()
            except Exception:  # pragma: no cover - best effort
                log.exception("closing %s failed", type(inst).__name__)
        if self._shared_redis is not None:  # the shared breaker / rate-limit Redis client
            await self._shared_redis.aclose()

    async def _instance(self, ps: PlannedStep) -> Station:
        inst = self._instances.get(ps.index)
        if inst is not None:
            return inst
        async with self._open_lock:
            inst = self._instances.get(ps.index)
            if inst is None:
                assert ps.station is not None
                inst = ps.station(ps.settings)
                await inst.open()
                self._instances[ps.index] = inst
        return inst

    def throttle(self, station: str) -> Throttle | None:
        """The shared pause of ``station`` (by station name): see :mod:`waystation.resilience.throttle`."""
        return self._throttles.get(station)

    def breaker(self, station: str) -> CircuitBreaker | None:
        """The circuit breaker of ``station`` (by station name), if it has one."""
        return self._breakers.get(station)

    def _breaker_changed(self, name: str, old: BreakerState, new: BreakerState, cause: str | None) -> None:
        log.warning("breaker of %s: %s -> %s (%s)", name, old.value, new.value, cause or "")
        if self._active.get("on_breaker_change"):
            for aw in self.hooks.notify_sync("on_breaker_change", station=name, old=old.value, new=new.value,
                                             cause=cause):
                task = asyncio.ensure_future(aw)
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    # -- hooks ------------------------------------------------------------------------------

    async def _notify(self, name: str, rc: RunContext | None, **kwargs: Any) -> None:
        """Call every implementation of an observer hook, each in isolation (see
        :mod:`waystation.hookcall`); an error is recorded on the lead's ``errors``."""
        step = kwargs.get("step")
        rec = rc.steps.get(step.id) if rc is not None and isinstance(step, PlannedStep) else None
        await self.hooks.notify(name, self._on_hook_error(rc, rec), **kwargs)

    @staticmethod
    def _on_hook_error(rc: RunContext | None, rec: StepRecord | None = None
                       ) -> Callable[[HookFailure], None] | None:
        if rc is None:
            return None

        def record(failure: HookFailure) -> None:
            rc.errors.append(failure.message)
            if rec is not None:
                rec.hook_errors.append(failure.message)
        return record

    # -- lease sweep ------------------------------------------------------------------------

    def _start_sweep(self) -> None:
        if self.batch_budget is None or self._sweeper is not None:
            return
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        """Settle the batch budget's reservations whose lease ran out (their holder died), while
        this engine lives: see :meth:`waystation.budget.Budget.expire_leases`."""
        assert self.batch_budget is not None
        while True:
            await asyncio.sleep(self.sweep_every)
            dead = self.batch_budget.expire_leases()
            if dead:
                log.warning("released %d budget reservation(s) whose lease ran out: %s", len(dead),
                            ", ".join(r.holder for r in dead))

    # -- one lead ---------------------------------------------------------------------------

    async def run(self, lead: Mapping[str, Any], *, lead_id: str | None = None) -> LeadResult:
        """Run one lead through the route and return its :class:`LeadResult`.

        With a checkpointer, a lead already finished in this run is returned as saved, and a lead
        interrupted earlier resumes: completed steps are never run again.
        """
        lid = lead_id or lead_id_of(lead)
        budget = Budget(self.plan.budget, name=f"lead {lid}")
        rc: RunContext | None = None
        state = await self.checkpointer.load(self.run_id, lid) if self.checkpointer is not None \
            else self._parked.pop(lid, None)
        if state is not None:
            # another lead's state (same id, other input) is not reused; a tampered one fails the lead
            rc = restore_context(state, budget, lead)
        if rc is not None:
            if rc.status == "deferred":  # a vendor asked it to wait: go on from the deferred step
                rc.status, rc.reason = "running", None
                for rec in rc.steps.values():
                    if rec.reason == "deferred" and not rec.ended:
                        rec.reason = None
            elif rc.status == "held":
                rc.reopen()  # a gate fault or the batch budget held it: try again
            if rc.status != "running":
                return self._finish_data(rc)
        if rc is None:
            rc = RunContext(lid, self.plan.name, dict(lead), budget, self.run_id)
        self._start_sweep()
        if self._active["before_lead"]:
            await self._notify("before_lead", rc, route=self.plan, ctx=rc)
        await self._drive(rc)
        result = rc.result()
        if rc.status == "deferred":
            result.retry_at = rc.extra.get("retry_at")
            if self.checkpointer is None:
                self._parked[lid] = rc.to_state()
        if self.checkpointer is not None:
            await self.checkpointer.save(self.run_id, lid, rc.to_state())
        if self._active["after_lead"]:
            await self._notify("after_lead", rc, route=self.plan, ctx=rc, result=result)
        return result

    def _finish_data(self, rc: RunContext) -> LeadResult:
        """The result of a lead that had already ended (loaded from its checkpoint): its data is
        rebuilt from the saved outcomes in route order; saved provenance is kept (see ``_merge``)."""
        data = dict(rc.input)
        prov: dict[str, Provenance] = {}
        for ps in self.plan.steps:
            fields = rc.outcomes.get(ps.id)
            if fields is not None:
                self._merge(data, prov, ps, fields, rc)
        rc.data, rc.provenance = data, prov
        return rc.result()

    def _merge(self, data: dict[str, Any], prov: dict[str, Provenance] | None, ps: PlannedStep,
               fields: Mapping[str, Any], rc: RunContext) -> None:
        fill_only = bool(ps.fallback_fields)
        rec = rc.steps.get(ps.id)
        cost = rec.cost if rec else 0.0
        now = time.time()
        for k, v in fields.items():
            if fill_only and _present(data.get(k)):
                continue
            data[k] = v
            if prov is not None:
                old = rc.provenance.get(k)
                prov[k] = old if (old is not None and old.step == ps.id) else Provenance(step=ps.id, at=now,
                                                                                          cost=cost)
        if rec is not None and rec.cleared:
            for k in rec.cleared:
                data.pop(k, None)
                if prov is not None:
                    prov.pop(k, None)

    def _view(self, ps: PlannedStep, rc: RunContext, merged: int) -> Mapping[str, Any]:
        anc = ps.ancestors
        if merged == ps.index and len(anc) == ps.index:
            return MappingProxyType(rc.data)
        data = dict(rc.input)
        steps = self.plan.steps
        for a in anc:
            fields = rc.outcomes.get(steps[a].id)
            if fields is not None:
                self._merge(data, None, steps[a], fields, rc)
        return MappingProxyType(data)

    async def _drive(self, rc: RunContext) -> None:
        steps = self.plan.steps
        n = len(steps)
        waiting = [len(s.deps) for s in steps]
        done = [False] * n
        ready = [i for i in range(n) if waiting[i] == 0]
        running: dict[asyncio.Task[Decision], int] = {}
        stop: Decision = _GO
        merged = 0
        data = rc.data = dict(rc.input)
        prov = rc.provenance

        def finish(i: int) -> None:
            nonlocal merged
            done[i] = True
            while merged < n and done[merged]:
                ps = steps[merged]
                fields = rc.outcomes.get(ps.id)
                if fields is not None:
                    self._merge(data, prov, ps, fields, rc)
                merged += 1
            for c in steps[i].dependents:
                waiting[c] -= 1
                if waiting[c] == 0:
                    ready.append(c)

        def apply(decision: Decision) -> None:
            nonlocal stop
            if decision.rank > stop.rank:
                stop = decision

        try:
            while ready or running:
                ready.sort()
                while ready:
                    i = ready.pop(0)
                    ps = steps[i]
                    rec = rc.steps.get(ps.id)
                    if rec is not None and rec.ended:
                        if rec.stop:
                            apply(Decision(Stop(rec.stop), rec.stop_reason, rec.held, rec.cause))
                        finish(i)
                        continue
                    if stop.stop is not Stop.CONTINUE:
                        if "deferred" not in rc.extra:  # a deferred lead's later steps stay pending
                            await self._skip(ps, rc, "stopped")
                        finish(i)
                        continue
                    if not running and not ready:
                        apply(await self._step(ps, rc, self._view(ps, rc, merged)))
                        finish(i)
                        continue
                    task = asyncio.ensure_future(self._step(ps, rc, self._view(ps, rc, merged)))
                    running[task] = i
                if running:
                    finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    for task in sorted(finished, key=lambda t: running[t]):
                        i = running.pop(task)
                        apply(task.result())
                        finish(i)
        except BaseException:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
            raise
        rc.cause = stop.cause
        if stop.stop is Stop.FAIL:
            rc.status, rc.reason = ("held" if stop.held else "failed"), stop.reason
        elif "deferred" in rc.extra:
            rc.status, rc.reason = "deferred", rc.extra["deferred"]
            rc.cause = "deferred by the vendor"
        elif stop.stop is Stop.SKIP_REMAINING:
            rc.status, rc.reason = "stopped", stop.reason
        else:
            rc.status, rc.reason = "succeeded", None

    # -- one step ---------------------------------------------------------------------------

    async def _skip(self, ps: PlannedStep, rc: RunContext, reason: str, detail: str | None = None,
                    decision: Decision = GO) -> Decision:
        rec = rc.steps.get(ps.id)
        if rec is None:
            rec = rc.steps[ps.id] = StepRecord()
        rec.status = "skipped"
        rec.reason = reason
        rec.intent = False
        if detail:
            rec.error = detail
        self._mark(rec, decision)
        if self._active["on_step_skipped"]:
            await self._notify("on_step_skipped", rc, step=ps, ctx=rc, reason=reason)
        return decision

    @staticmethod
    def _mark(rec: StepRecord, decision: Decision) -> None:
        if decision.stop is not Stop.CONTINUE:
            rec.stop, rec.stop_reason = decision.stop.value, decision.reason
            rec.held, rec.cause = decision.held, decision.cause

    async def _screen(self, ps: PlannedStep, rc: RunContext, data: Mapping[str, Any]) -> Decision | None:
        """Ask the ``screen_step`` hook (e.g. the suppression ledger) whether the lead may go on to
        this step. An answer, or a screen that raised, refuses (fail closed): the step is skipped
        with reason ``screened`` and the lead stops. Each implementation is called on its own
        (:mod:`waystation.hookcall`)."""
        failures: list[str] = []
        record = self._on_hook_error(rc, rc.steps.get(ps.id))

        def failed(f: HookFailure) -> None:
            failures.append(f.message)
            if record is not None:
                record(f)

        answers = await self.hooks.results("screen_step", failed, step=ps, ctx=rc, data=data)
        reason = next((str(a) for _, a in answers if a), None)
        if reason is None and failures:
            reason = f"the screen could not run ({redact(failures[0], ps.secrets)}): the lead does not go on"
        if reason is None:
            return None
        return await self._skip(ps, rc, "screened", reason,
                                Decision(Stop.SKIP_REMAINING, reason, cause=f"screened before {ps.id}"))

    def _budgets(self, rc: RunContext) -> list[Budget]:
        return [rc.budget, self.batch_budget] if self.batch_budget is not None else [rc.budget]

    def _no_room(self, ps: PlannedStep, refused_by: Budget | None) -> Decision:
        """The decision when a budget cannot cover a call of ``ps``."""
        if refused_by is not None and (refused_by is self.batch_budget or refused_by is SHARED):
            return budget_hold(ps.id)  # the batch's (or the fleet's) budget: resumable
        if ps.gate:
            return hold(ps.id, "budget", "the lead's budget has no room for it", fault=False)
        return GO

    async def _step(self, ps: PlannedStep, rc: RunContext, data: Mapping[str, Any]) -> Decision:
        if ps.station is None:
            return await self._skip(ps, rc, "not_installed")
        if not ps.enabled:
            return await self._skip(ps, rc, "disabled")
        if ps.condition is not None and not ps.condition.evaluate(data):
            return await self._skip(ps, rc, "condition")
        missing = [f for f in ps.requires if not _present(data.get(f))]
        if missing:
            detail = "missing " + ", ".join(missing)
            return await self._skip(ps, rc, "missing_requirements", detail,
                                    hold(ps.id, "missing_requirements", detail, fault=False) if ps.gate else GO)
        if ps.fallback_fields and all(_present(data.get(f)) for f in ps.fallback_fields):
            return await self._skip(ps, rc, "fallback_not_needed")
        if self._screened:
            refused = await self._screen(ps, rc, data)
            if refused is not None:
                return refused
        rec = rc.steps.get(ps.id)
        if rec is None:
            rec = rc.steps[ps.id] = StepRecord()
        async with StepMoney(self._budgets(rc), f"{rc.lead_id}/{ps.id}", ps.cost, rec,
                             self.lease_seconds, self.shared_budget) as money:
            return await self._live(ps, rc, rec, data, money)

    async def _in_doubt(self, ps: PlannedStep, rc: RunContext, rec: StepRecord, money: StepMoney) -> None:
        """A call whose result was lost in a crash: in doubt. Count it as paid (conservative)."""
        rec.in_doubt = True
        rec.intent = False
        charged = to_micros(rec.pending_cost)
        rec.pending_cost = 0.0
        holder = f"{rc.lead_id}/{ps.id}"
        for b in self._budgets(rc):
            # a batch budget restored from a ledger holds this intent as a reservation (or, when
            # its lease ran out, already booked it as spent)
            for res in [r for r in b.reservations.values() if r.holder == holder and r.id < 0]:
                b.release(res)
            b.spent_micros += max(0, charged - b.expired_spent.pop(holder, 0))
        await money.in_doubt(holder, charged)
        if charged:
            rec.cost += from_micros(charged)
            if self._active["on_cost"]:
                await self._notify("on_cost", rc, step=ps, ctx=rc, amount=from_micros(charged))

    async def _live(self, ps: PlannedStep, rc: RunContext, rec: StepRecord, data: Mapping[str, Any],
                    money: StepMoney) -> Decision:
        assert ps.station is not None
        outcome: Outcome | None = None
        if rec.intent:
            await self._in_doubt(ps, rc, rec, money)
            if ps.in_doubt == "skip":
                return await self._skip(ps, rc, "in_doubt")
            if ps.in_doubt == "recheck":
                station = await self._instance(ps)
                ctx = self._ctx(ps, rc, data)
                try:
                    outcome = await station.recheck(ctx)
                except Exception as exc:
                    rc.errors.append(f"{ps.id}: recheck failed: {redact(str(exc), ps.secrets)}")
                    outcome = None
                if outcome is None:
                    return await self._skip(ps, rc, "in_doubt")
                outcome = Outcome(outcome.fields, 0.0, outcome.stop, outcome.reason, outcome.misses)
        if outcome is None and ps.cost > 0 and not await money.reserve():
            which = "the lead's budget" if money.refused_by is rc.budget else "the batch budget"
            return await self._skip(ps, rc, "budget", f"{which} has no room for ${ps.cost:g}",
                                    self._no_room(ps, money.refused_by))
        breaker = self._breakers.get(ps.station.name) if outcome is None else None
        if breaker is not None and not await breaker.allow():
            await money.release()
            return await self._skip(ps, rc, "breaker_open", None,
                                    hold(ps.id, "breaker_open", f"the breaker of {ps.station.name} is open")
                                    if ps.gate else GO)
        if self._active["before_step"]:
            try:
                await self._notify("before_step", rc, step=ps, ctx=rc)
            except BaseException:  # cancelled: the breaker's slot was never used
                if breaker is not None:
                    await breaker.release()
                raise
        rec.status = "running"
        started = time.perf_counter()
        if outcome is None:
            try:
                outcome = await self._call(ps, rc, rec, data, money, breaker)
            except Exception as exc:
                if isinstance(exc, CheckpointFailed):
                    rec.attempts -= 1  # nothing went out (the reservation is released on the way out)
                    raise
                if isinstance(exc, BreakerOpen) and exc.first_attempt:
                    rec.attempts -= 1  # nothing went out
                    await money.release()
                    return await self._skip(ps, rc, "breaker_open", None,
                                            hold(ps.id, "breaker_open", str(exc)) if ps.gate else GO)
                if isinstance(exc, StepDeferred):
                    return self._deferred(ps, rc, rec, exc)
                return await self._failed(ps, rc, rec, exc, started)
        return await self._succeeded(ps, rc, rec, outcome, money, started)

    def _ctx(self, ps: PlannedStep, rc: RunContext, data: Mapping[str, Any]) -> StepContext:
        assert ps.settings is not None
        return StepContext(data, lead_id=rc.lead_id, step_id=ps.id, route=rc.route, run_id=rc.run_id,
                           settings=ps.settings, budget=rc.budget)

    async def _call(self, ps: PlannedStep, rc: RunContext, rec: StepRecord, data: Mapping[str, Any],
                    money: StepMoney, breaker: CircuitBreaker | None) -> Outcome:
        """Call the station with retries (stamina), a timeout per attempt, the breaker and the
        rate limit. ``_step`` already got the breaker's permission and the budget reservation for
        the first attempt; each retry asks for both again (a retry the budget cannot cover is not
        made: :class:`NoRoom`). Attempts are counted in ``rec`` (the run context), so a resumed
        lead goes on from where it stopped. What each attempt cost is booked in ``money``."""
        name = ps.station.name if ps.station else ps.id
        # An allowed breaker call must be reported exactly once (record, or release when no
        # vendor call happened), or a half-open probe slot would stay taken.
        holding = breaker is not None
        tripped = False
        try:
            station = await self._instance(ps)
        except BaseException:
            if breaker is not None:
                await breaker.release()
            raise
        ctx = self._ctx(ps, rc, data)
        limiter = self._limiters.get(name)
        throttle = self._throttles.get(name)
        policy = ps.retry
        first = rec.attempts + 1
        remaining = max(1, policy.max_attempts - rec.attempts)
        called = False

        async def call() -> Outcome:
            if throttle is not None and throttle.remaining_local() > 0:
                await throttle.wait(local_only=True)  # a pause taken while this call waited for its slot
            if breaker is not None and limiter is not None and await breaker.refuses():
                # it opened while this call waited for its rate-limit slot
                raise BreakerOpen(f"breaker of {name} opened", first_attempt=rec.attempts == first)
            if ps.paid and self.checkpointer is not None:
                rec.intent = True
                rec.pending_cost = money.reserved
                try:
                    await self.checkpointer.save(self.run_id, rc.lead_id, rc.to_state())
                except Exception as exc:  # the store, not the station: no call, and not a step failure
                    rec.intent, rec.pending_cost = False, 0.0
                    raise CheckpointFailed(f"could not save the intent of {ps.id} ({type(exc).__name__}: "
                                           f"{exc}); the call was not made") from exc
            nonlocal called
            called = True
            money.called()
            try:
                return await self._timed(station.process(ctx), ps.timeout)
            except Exception as exc:
                wait = retry_after_of(exc) if throttle is not None else None
                if wait is not None and classify_error(exc) == "throttled":
                    await throttle.pause(wait)  # type: ignore[union-attr]
                raise

        last_error: BaseException | None = None

        async def attempt(n: int) -> Outcome:
            nonlocal holding, tripped, called, last_error
            if ps.cost > 0 and money.hold is None and not await money.reserve():
                why = f" after attempt {n - 1} failed: {_error_text(last_error)}" if last_error else ""
                raise NoRoom(f"the budget has no room for another attempt of {name} (${ps.cost:g}){why}",
                             money.refused_by is not None and money.refused_by is not rc.budget)
            ctx.attempt = n
            rec.attempts = n
            called = False
            if breaker is not None and not holding:
                if not await breaker.allow():
                    raise BreakerOpen(f"breaker of {name} opened")
                holding = True
            try:
                if throttle is not None:
                    # the vendor asked every call of this station to wait (here, or in another worker)
                    await throttle.wait()
                if limiter is not None:
                    async with limiter.slot():
                        out = await call()
                else:
                    out = await call()
                try:
                    out = self._check_outcome(ps, out)
                except OutcomeValidationError as bad:  # it answered: book what it says it cost
                    bad.incurred_cost = out.cost if isinstance(out, Outcome) else money.reserved  # type: ignore[attr-defined]
                    raise
            except BaseException as exc:
                last_error = exc
                if called and isinstance(exc, Exception):
                    incurred = getattr(exc, "incurred_cost", 0.0)
                    if incurred and isinstance(incurred, int | float) and not isinstance(incurred, bool):
                        await self._charge_failed_call(ps, rc, money, float(incurred))
                    elif isinstance(exc, CallCutOff):
                        # cut off by the timeout: the vendor may have billed it
                        await self._charge_failed_call(ps, rc, money, money.reserved)
                    else:
                        await money.unbilled()  # the station says the failed call cost nothing
                    rec.intent, rec.pending_cost = False, 0.0
                if breaker is not None and holding:
                    holding = False
                    if called and isinstance(exc, Exception):
                        after = await breaker.record(False, classify_error(exc))
                        tripped = after.state is BreakerState.OPEN
                    elif not isinstance(exc, BreakerOpen):
                        await breaker.release()
                raise
            if breaker is not None and holding:
                holding = False
                await breaker.record(True)
            return out

        if remaining == 1:
            try:
                return await attempt(first)
            except Exception as exc:
                deferred = deferral_for(exc, policy, last_attempt=True)
                if deferred is not None:
                    raise deferred from None
                raise

        def on(exc: Exception) -> bool | float:
            # never retried: CancelledError (not an Exception), an open breaker (no retry sleep
            # either: the failure that just opened it ends the step at once), a non-retryable
            # error, a budget that cannot cover another attempt, a checkpoint store that failed
            if tripped or isinstance(exc, BreakerOpen | NoRoom | CheckpointFailed) or not policy.should_retry(exc):
                return False
            after = retry_after_of(exc)
            return min(after, policy.max_delay) if after is not None else True

        async for att in stamina.retry_context(
            on=on, attempts=remaining, timeout=None, wait_initial=policy.base_delay,
            wait_max=policy.max_delay, wait_jitter=policy.jitter, wait_exp_base=policy.multiplier,
        ):
            with att:
                n = first + att.num - 1
                try:
                    return await attempt(n)
                except Exception as exc:
                    deferred = deferral_for(exc, policy, last_attempt=att.num >= remaining)
                    if deferred is not None:
                        raise deferred from None
                    if att.num < remaining and on(exc) is not False:
                        delay = policy.delay_for(exc, att.num)
                        log.warning("retrying %s (station %s) of lead %s: attempt %d of %d failed: %s; "
                                    "next attempt in about %.2g s", ps.id, name, rc.lead_id, n,
                                    first + remaining - 1, redact(_error_text(exc), ps.secrets), delay)
                        if self._active["on_retry"]:
                            # the policy's delay (jitter aside), also in test mode where waits are off
                            await self._notify("on_retry", rc, step=ps, ctx=rc, attempt=n, error=exc,
                                               delay=delay)
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _deferred(self, ps: PlannedStep, rc: RunContext, rec: StepRecord, exc: StepDeferred) -> Decision:
        """The vendor asked to wait longer than the step may: the step stays pending (the throttled
        call is not counted as an attempt), nothing later starts, the lead ends ``deferred``."""
        rec.status, rec.reason = "pending", "deferred"
        rec.attempts = max(0, rec.attempts - 1)
        rec.intent, rec.pending_cost = False, 0.0
        rec.error = redact(str(exc), ps.secrets)
        reason = f"{ps.id} {rec.error}"
        retry_at = time.time() + exc.wait
        rc.extra["retry_at"] = max(retry_at, rc.extra.get("retry_at", 0.0))
        rc.extra.setdefault("deferred", reason)
        return Decision(Stop.SKIP_REMAINING, reason)

    async def _charge_failed_call(self, ps: PlannedStep, rc: RunContext, money: StepMoney, amount: float) -> None:
        """Book what a failed attempt cost (``StepError.incurred_cost``): the vendor billed it."""
        before = money.overrun_micros
        booked = await money.book(amount)
        self._note_overrun(ps, rc, money, before, booked)
        if self._active["on_cost"]:
            await self._notify("on_cost", rc, step=ps, ctx=rc, amount=booked)

    @staticmethod
    def _note_overrun(ps: PlannedStep, rc: RunContext, money: StepMoney, before: int, amount: float) -> None:
        if money.overrun_micros > before:
            money.rec.overrun += from_micros(money.overrun_micros - before)
            rc.errors.append(f"{ps.id} cost ${amount:.4f}, more than the ${ps.cost:.4f} it reserved "
                             "(overrun): declare the right cost")

    @staticmethod
    async def _timed(coro: Awaitable[Outcome], timeout: float | None) -> Outcome:
        if timeout is None:
            return await coro
        cm = asyncio.timeout(timeout)
        try:
            async with cm:
                return await coro
        except TimeoutError as exc:
            if cm.expired():
                raise CallCutOff(f"no answer within the step's timeout of {timeout:g} s") from exc
            raise

    def _check_outcome(self, ps: PlannedStep, out: Any) -> Outcome:
        name = ps.spec.station
        if not isinstance(out, Outcome):
            raise OutcomeValidationError(f"{name}.process returned {type(out).__name__}, not an Outcome")
        provides = ps.provides
        for k in out.clear:
            if k not in provides:
                raise OutcomeValidationError(f"{name} asks to clear field {k!r}, which it does not declare in provides")
        simple = True
        for k, v in out.fields.items():
            tp = provides.get(k)
            if tp is None:
                raise OutcomeValidationError(
                    f"{name} returned field {k!r}, which it does not declare in provides "
                    f"({', '.join(provides) or 'nothing'})")
            if v is None:
                continue
            if tp in _PLAIN:
                ok = isinstance(v, tp) and not (tp is int and isinstance(v, bool)) if tp is not float \
                    else isinstance(v, int | float) and not isinstance(v, bool)
                if not ok:
                    raise OutcomeValidationError(
                        f"{name} returned field {k!r} as {type(v).__name__}, declared {tp.__name__}")
            else:
                simple = False
        if not simple:
            assert ps.station is not None
            try:
                outcome_model(ps.station).model_validate(out.fields)
            except Exception as exc:
                errors = getattr(exc, "errors", None)
                detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors()) \
                    if callable(errors) else str(exc)
                raise OutcomeValidationError(f"{name} returned invalid fields: {detail}") from None
        return out

    async def _failed(self, ps: PlannedStep, rc: RunContext, rec: StepRecord, exc: BaseException,
                      started: float) -> Decision:
        rec.duration = time.perf_counter() - started
        rec.status = "failed"
        rec.intent = False
        rec.pending_cost = 0.0
        category = "breaker_open" if isinstance(exc, BreakerOpen) else classify_error(exc)
        rec.error_category = category
        rec.error = redact(_error_text(exc), ps.secrets)
        if isinstance(exc, NoRoom) and exc.batch:
            decision = budget_hold(ps.id)
        elif ps.gate:
            decision = hold(ps.id, category, rec.error, fault=is_fault(category) and not isinstance(exc, NoRoom))
        elif ps.on_error == "fail":
            decision = Decision(Stop.FAIL, f"{ps.id} failed: {rec.error}", cause=f"step {ps.id} failed: {category}")
        else:
            decision = GO
        self._mark(rec, decision)
        if self.checkpointer is not None and ps.paid:
            await self.checkpointer.save(self.run_id, rc.lead_id, rc.to_state())
        if self._active["on_step_error"]:
            await self._notify("on_step_error", rc, step=ps, ctx=rc, error=exc)
        return decision

    async def _price(self, ps: PlannedStep, rc: RunContext, rec: StepRecord, outcome: Outcome) -> float:
        """The price of a successful call: the first plugin's ``price_step`` answer; a plugin that
        raises or answers something that is not a price is recorded and the next one is asked
        (the core's default answers the outcome's cost)."""
        if not self._custom_price:
            return outcome.cost
        record = self._on_hook_error(rc, rec)
        answer = await self.hooks.first("price_step", record, step=ps, ctx=rc, outcome=outcome)
        if answer is None:
            return outcome.cost
        price = _valid_price(answer[1])
        if price is None:
            msg = (f"hook price_step of plugin {answer[0]} answered {answer[1]!r}, not a price in USD: "
                   f"the outcome's cost ${outcome.cost:g} is booked")
            log.warning("%s", msg)
            rc.errors.append(msg)
            rec.hook_errors.append(msg)
            return outcome.cost
        return price

    async def _decide(self, ps: PlannedStep, rc: RunContext, rec: StepRecord, outcome: Outcome) -> Decision:
        """The stop decision after a success: the most severe answer of the station and of every
        ``decide_stop`` implementation. An implementation that raises (or answers nonsense) is
        recorded and ignored; for a gate that holds the lead, since its verdict is then unknown."""
        decision = Decision(outcome.stop, outcome.reason or outcome.stop.value) \
            if outcome.stop is not Stop.CONTINUE else GO
        if not self._custom_stop:
            return decision
        failures: list[str] = []
        record = self._on_hook_error(rc, rec)

        def failed(f: HookFailure) -> None:
            failures.append(f.message)
            if record is not None:
                record(f)

        for plugin, ans in await self.hooks.results("decide_stop", failed, step=ps, ctx=rc, outcome=outcome):
            if ans is None:
                continue
            try:
                stop_value = Stop(ans[0] if isinstance(ans, tuple) else ans)
                why = ans[1] if isinstance(ans, tuple) and len(ans) > 1 else None
            except (ValueError, TypeError, IndexError):
                msg = f"hook decide_stop of plugin {plugin} answered {ans!r}, not a Stop"
                log.warning("%s", msg)
                rc.errors.append(msg)
                rec.hook_errors.append(msg)
                failures.append(msg)
                continue
            cand = Decision(stop_value, str(why) if why else stop_value.value)
            if cand.rank > decision.rank:
                decision = cand
        if failures and ps.gate and decision.stop is not Stop.FAIL:
            decision = hold(ps.id, "decide_stop_error", failures[0])
        return decision

    async def _succeeded(self, ps: PlannedStep, rc: RunContext, rec: StepRecord, outcome: Outcome,
                         money: StepMoney, started: float) -> Decision:
        rec.duration = time.perf_counter() - started
        amount = await self._price(ps, rc, rec, outcome)
        # book at once: whatever happens next (a hook, a cancellation, a failed save), it is booked
        before = money.overrun_micros
        amount = await money.book(amount)
        self._note_overrun(ps, rc, money, before, amount)
        decision = await self._decide(ps, rc, rec, outcome)
        if self._active["on_cost"]:
            await self._notify("on_cost", rc, step=ps, ctx=rc, amount=amount)
        # validate against the lead schema and keep the fields
        fields = {k: v for k, v in outcome.fields.items() if v is not None}
        validation = self.plan.route.spec.validation
        if validation != "off" and fields:
            problems = check_fields(fields)
            if problems:
                rec.validation = [f"{k}: {m}" for k, m in problems.items()]
                for k in problems:
                    fields.pop(k)
                if validation == "strict" and decision.stop is not Stop.FAIL:
                    decision = Decision(Stop.FAIL, f"validation failed after {ps.id}: {'; '.join(rec.validation)}",
                                        cause=f"validation after {ps.id}")
        rc.outcomes[ps.id] = fields
        rec.status = "succeeded"
        rec.hit = bool(fields)
        rec.intent = False
        rec.pending_cost = 0.0
        if outcome.misses:
            rec.misses = dict(outcome.misses)
        if outcome.clear:
            rec.cleared = [k for k in outcome.clear if k not in fields]
        if decision.stop is not Stop.CONTINUE and decision.cause is None:
            decision = decision._replace(cause=f"stopped by {ps.id}")
        self._mark(rec, decision)
        if outcome.reason and not rec.stop_reason:
            rec.stop_reason = outcome.reason
        if self.checkpointer is not None:
            soon = None if ps.paid else getattr(self.checkpointer, "save_nowait", None)
            if soon is not None:  # a free step: queue it; if lost in a crash it simply runs again
                soon(self.run_id, rc.lead_id, rc.to_state())
            else:
                await self.checkpointer.save(self.run_id, rc.lead_id, rc.to_state())
        if self._active["after_step"]:
            await self._notify("after_step", rc, step=ps, ctx=rc, outcome=outcome)
        return decision


def _error_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, StepError | OutcomeValidationError | BreakerOpen):
        text = f"{type(exc).__name__}: {text}"
    return text
