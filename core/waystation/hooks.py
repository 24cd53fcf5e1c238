"""The hook specifications of waystation (pluggy project name ``waystation``).

A plugin is a module (or object) registered under the ``waystation`` entry-point group that
implements any subset of these hooks with ``@waystation.hookimpl``, taking any subset of each
hook's arguments (pluggy's rule). Hooks are synchronous pluggy hooks; where an implementation
returns an awaitable, the engine awaits it, so an async observer is possible.

Unless a hook says *firstresult*, every implementation is called and the results are combined as
the hook describes. The core's own default behaviour (pricing a step at the outcome's cost, taking
the station's own stop decision, the report collector) is an internal plugin registered with
``trylast``/``tryfirst`` markers that a third party can override: see :mod:`waystation.builtin`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from waystation.forget import Erasure, ForgetRequest
    from waystation.plan import Plan, PlannedStep
    from waystation.result import LeadResult, RunContext
    from waystation.station import Outcome, Station, Stop

PROJECT = "waystation"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ----------------------------------------------------------------------------- registration


@hookspec
def register_stations() -> Iterable[type[Station]]:  # type: ignore[empty-body]
    """Return the station classes this plugin provides.

    Called once when plugins are loaded, once per plugin (so that each station is attributed to
    its distribution). Two plugins returning the same station ``name`` is an error that names both
    distributions. Import only light modules here: heavy dependencies belong in the station's
    methods, so that ``waystation stations`` and ``waystation check`` stay fast.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``waystation`` command line (``cli.add_command(...)``).

    Called once when the CLI starts. The return value is ignored.
    """


@hookspec
def plugin_api() -> str | None:
    """Return the range of core plugin-API versions this plugin supports (e.g. ``">=1,<2"``).

    *firstresult* per plugin. A module may instead set ``WAYSTATION_API = ">=1,<2"``. A plugin
    outside the range is refused with both versions named; one that declares nothing still loads,
    flagged in ``waystation plugins``.
    """


# ----------------------------------------------------------------------------- steps


@hookspec
def before_step(step: PlannedStep, ctx: RunContext) -> None:
    """Called just before a step's station is called (after its condition, requirements,
    fallback, budget and breaker checks passed), once per step (not per retry attempt).

    ``step`` has ``.id``, ``.station`` (the class) and ``.index``; ``ctx`` is the lead's run
    context. The return value is ignored.
    """


@hookspec
def after_step(step: PlannedStep, ctx: RunContext, outcome: Outcome) -> None:
    """Called when a step succeeded: its outcome was validated, priced and its stop decided.
    ``ctx.steps[step.id]`` holds its record (duration, attempts, cost, status) and
    ``outcome.fields`` the fields it produced; those are **not yet** in ``ctx.data``: they are
    merged after this hook, in route order (a step's fields land once every earlier step of the
    route has ended), so read them from ``outcome``. The return value is ignored.
    """


@hookspec
def on_step_error(step: PlannedStep, ctx: RunContext, error: BaseException) -> None:
    """Called when a step failed for good (after its retries), or its outcome was invalid.
    The step then follows its ``on_error``. The return value is ignored."""


@hookspec
def on_step_skipped(step: PlannedStep, ctx: RunContext, reason: str) -> None:
    """Called when a step ended without running: ``reason`` is one of ``disabled``,
    ``condition``, ``missing_requirements``, ``fallback_not_needed``, ``budget``,
    ``breaker_open``, ``stopped``, ``in_doubt``, ``not_installed``, ``screened``. The return value is ignored."""


@hookspec
def on_retry(step: PlannedStep, ctx: RunContext, attempt: int, error: BaseException, delay: float) -> None:
    """Called when attempt number ``attempt`` failed with ``error`` and another attempt follows
    after about ``delay`` seconds (jitter aside). The return value is ignored."""


@hookspec
def on_breaker_change(station: str, old: str, new: str, cause: str | None) -> None:
    """Called when a station's circuit breaker changes state (``closed``, ``open``,
    ``half_open``); when it opens ``cause`` is ``failures`` (threshold reached), or ``auth``,
    ``blocked`` or ``exhausted`` (opened at once by such an error). Ignored result."""


@hookspec
def screen_step(step: PlannedStep, ctx: RunContext, data: Mapping[str, Any]) -> str | None:
    """Return a reason when the lead must not go on to ``step``, or ``None`` to let it through.

    Called before every step that passed its condition, requirements and fallback checks, and
    before any budget is reserved or any call is made; ``data`` is the lead as the step would see
    it (so a phone a vendor returned earlier is screened too). Any answer, or an implementation
    that raises, refuses: the step is skipped with reason ``screened`` and the lead stops
    (``stopped``, with the reason) — nothing is looked up, bought, cached or saved after that.
    The core's suppression ledger (``waystation suppress``) is such a screen.
    """


# ----------------------------------------------------------------------------- cost


@hookspec(firstresult=True)
def price_step(step: PlannedStep, ctx: RunContext, outcome: Outcome) -> float | None:
    """Return the price in USD of the call that produced ``outcome`` (e.g. a negotiated rate).

    *firstresult*: the first non-``None`` answer wins. The core's ``trylast`` default returns
    ``outcome.cost``. The price settles the step's budget reservation.
    """


@hookspec
def on_cost(step: PlannedStep, ctx: RunContext, amount: float) -> None:
    """Called with every cost recorded for a step (after pricing, also when 0). Ignored result."""


# ----------------------------------------------------------------------------- stop decisions


@hookspec
def decide_stop(step: PlannedStep, ctx: RunContext, outcome: Outcome) -> Stop | tuple[Stop, str] | None:
    """Return a stop condition for the route after ``outcome``, or ``None`` for no opinion.

    Every implementation is called; the most severe answer wins (FAIL > SKIP_REMAINING >
    CONTINUE), and its reason is recorded (return ``(Stop.FAIL, "why")`` to give one). The
    core's default implementation returns the outcome's own ``stop`` and ``reason``; a plugin can
    only escalate, never soften, what the station decided.
    """


# ----------------------------------------------------------------------------- leads and batches


@hookspec
def before_lead(route: Plan, ctx: RunContext) -> None:
    """Called when a lead starts on a route (also when it resumes), before its first step.

    ``route`` is the compiled :class:`~waystation.plan.Plan`; ``ctx.input`` is the lead as read,
    ``ctx.steps`` the records of steps that ended before a resume (empty for a new lead).
    Ignored result."""


@hookspec
def after_lead(route: Plan, ctx: RunContext, result: LeadResult) -> None:
    """Called when a lead has ended on a route (``route`` is the :class:`~waystation.plan.Plan`),
    after its final state was saved, with its :class:`LeadResult`; ``ctx.data`` holds every
    merged field. Ignored result."""


@hookspec
def before_batch(route: Plan) -> None:
    """Called once when ``waystation run`` (a :class:`~waystation.batch.BatchRunner`) starts, after
    the route was compiled (``route`` is the :class:`~waystation.plan.Plan`) and before the first
    lead. Queue workers never call it (a worker has no batch). Ignored result."""


@hookspec
def after_batch(route: Plan, report: Any) -> None:
    """Called once when ``waystation run`` ends (also when it was interrupted), with the
    :class:`~waystation.plan.Plan` and the run's report, a :class:`waystation.report.Report`
    (typed ``Any`` here only because :mod:`waystation.report` imports this module). Queue workers
    never call it. Ignored result."""


# ----------------------------------------------------------------------------- personal data


@hookspec
def forget_person(request: ForgetRequest) -> Iterable[Erasure] | Erasure | None:
    """Erase one person from what this plugin stores, for ``waystation forget`` (an erasure
    request under CCPA / GDPR); return what was removed, one :class:`~waystation.forget.Erasure`
    per place (``where``, ``what``, ``count``, ``note``), or ``None`` if it keeps nothing.

    ``request`` is a :class:`~waystation.forget.ForgetRequest`: ``lead_ids``, ``phones``
    (normalised digits) and ``emails`` (lower case) name the person (``request.matches(lead_id,
    *records)`` tells whether a lead is theirs); ``checkpoint`` is the checkpoint store URL,
    ``route`` the route (``request.station_settings(name)`` gives its steps' settings, to find
    where the data lives); ``dnc_internal`` asks to take their numbers off an internal do-not-call
    list; with ``dry_run`` nothing is removed, only counted. May return an awaitable. An
    implementation that raises is reported (count -1) and the others still run.
    """

