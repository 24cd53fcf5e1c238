"""A lead's run context (what hooks and checkpoints see) and its final :class:`LeadResult`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from waystation.budget import Budget

StepStatus = Literal["pending", "running", "succeeded", "skipped", "failed"]
#: ``held``: a gate could not run because of a fault, or the batch budget ran out; the lead is
#: not done and ``run --resume`` runs it again (see :mod:`waystation.gates`). ``deferred``: a
#: vendor asked it to wait (see :mod:`waystation.deferral`).
LeadStatus = Literal["running", "succeeded", "stopped", "failed", "deferred", "held"]

#: Reasons a step may be skipped for.
SKIP_REASONS = (
    "disabled",
    "not_installed",
    "condition",
    "missing_requirements",
    "fallback_not_needed",
    "budget",
    "breaker_open",
    "stopped",
    "in_doubt",
)


class StepRecord(BaseModel):
    """How one step ended: ``status``, why (``reason``), how long, how many attempts, what cost."""

    status: StepStatus = "pending"
    reason: str | None = None
    error: str | None = None
    error_category: str | None = None
    duration: float = 0.0
    attempts: int = 0
    cost: float = 0.0
    hit: bool = False
    stop: str | None = None
    stop_reason: str | None = None
    validation: list[str] = Field(default_factory=list)
    in_doubt: bool = False
    intent: bool = False
    pending_cost: float = 0.0
    misses: dict[str, str] = Field(default_factory=dict)
    cleared: list[str] = Field(default_factory=list)
    #: answered from the lookup cache: the age of the entry in seconds (no vendor call was made)
    cached: float | None = None
    #: this step's ending holds the lead (a gate fault, the batch budget): retried on resume
    held: bool = False
    #: short cause of the lead's stop set by this step (``gate DNC: breaker_open``, ``batch budget``)
    cause: str | None = None
    #: errors of hook implementations met during this step (the lead's ``errors`` has them too)
    hook_errors: list[str] = Field(default_factory=list)
    #: spend booked above what the step reserved (USD)
    overrun: float = 0.0

    @property
    def ended(self) -> bool:
        """Whether the step has a final status."""
        return self.status in ("succeeded", "skipped", "failed")


_RECORD_DEFAULTS: dict[str, Any] = {
    k: f.get_default(call_default_factory=True) for k, f in StepRecord.model_fields.items()}


def _dump_record(rec: StepRecord) -> dict[str, Any]:
    """``rec.model_dump(exclude_defaults=True)``, several times faster (checkpoints dump every
    record after every step)."""
    out: dict[str, Any] = {}
    defaults = _RECORD_DEFAULTS
    for k, v in rec.__dict__.items():
        if v != defaults[k]:
            out[k] = list(v) if type(v) is list else dict(v) if type(v) is dict else v
    return out


class Provenance(BaseModel):
    """Where a field's value came from: the step that set it, when (epoch seconds), at what cost;
    ``cache``: the value came from the lookup cache, stored that many seconds before."""

    step: str
    at: float
    cost: float = 0.0
    cache: float | None = None


class LeadResult(BaseModel):
    """One lead's result on a route."""

    lead_id: str
    route: str
    status: LeadStatus
    reason: str | None = None
    data: dict[str, Any]
    steps: dict[str, StepRecord]
    costs: dict[str, float] = Field(default_factory=dict)
    total_cost: float = 0.0
    provenance: dict[str, Provenance] = Field(default_factory=dict)
    errors: list[str] = Field(default_factory=list)
    resumed: bool = False
    #: For a ``deferred`` lead: when (epoch seconds) the vendor takes calls again (see waystation.deferral).
    retry_at: float | None = None
    #: short cause of a stop, failure or hold (``gate DNCScrubStation: missing_requirements``)
    cause: str | None = None


class RunContext:
    """One lead's state on a route while it runs; hooks receive it as ``ctx``.

    ``input`` is the lead as it came in, ``data`` the lead with every merged outcome (read it, do
    not write it), ``steps`` the record of each step by id, ``outcomes`` each succeeded step's
    fields, ``budget`` the lead's budget. Everything here but ``budget`` and ``extra`` is saved in
    checkpoints (see :meth:`to_state`).
    """

    __slots__ = (
        "_dumps", "budget", "cause", "data", "errors", "extra", "input", "lead_id", "outcomes",
        "provenance", "reason", "resumed", "route", "run_id", "status", "steps",
    )

    def __init__(self, lead_id: str, route: str, input: dict[str, Any], budget: Budget,
                 run_id: str | None = None) -> None:
        self.lead_id = lead_id
        self.route = route
        self.run_id = run_id
        self.input = input
        self.data: dict[str, Any] = dict(input)
        self.steps: dict[str, StepRecord] = {}
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.provenance: dict[str, Provenance] = {}
        self.budget = budget
        self.errors: list[str] = []
        self.status: LeadStatus = "running"
        self.reason: str | None = None
        self.cause: str | None = None
        self.resumed = False
        self.extra: dict[str, Any] = {}
        self._dumps: dict[str, tuple[StepRecord, dict[str, Any], dict[str, Any]]] = {}

    @property
    def costs(self) -> dict[str, float]:
        """Cost per step id (steps that cost something)."""
        return {sid: rec.cost for sid, rec in self.steps.items() if rec.cost}

    @property
    def total_cost(self) -> float:
        """Settled spend of this lead."""
        return self.budget.spent

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot for checkpoints (no secrets: settings are never part of it)."""
        return {
            "lead_id": self.lead_id,
            "route": self.route,
            "run_id": self.run_id,
            "input": self.input,
            "steps": self._dump_steps(),
            "outcomes": self.outcomes,
            "provenance": {k: {"step": v.step, "at": v.at, "cost": v.cost} if v.cache is None else
                           {"step": v.step, "at": v.at, "cost": v.cost, "cache": v.cache}
                           for k, v in self.provenance.items()},
            "spent_micros": self.budget.spent_micros,
            "errors": self.errors,
            "status": self.status,
            "reason": self.reason,
            "cause": self.cause,
        }

    def _dump_steps(self) -> dict[str, dict[str, Any]]:
        # A checkpoint is written after every step, so most records are dumped many times while
        # unchanged: reuse the last dump while the record's fields still equal a snapshot taken
        # then (lists and dicts copied, so in-place changes are seen too). The dumps are shared
        # between successive states: treat a state as read-only.
        cache = self._dumps
        out: dict[str, dict[str, Any]] = {}
        for k, rec in self.steps.items():
            values = rec.__dict__
            hit = cache.get(k)
            if hit is not None and hit[0] is rec and hit[1] == values:
                out[k] = hit[2]
                continue
            dump = out[k] = _dump_record(rec)
            snap = dict(values)
            snap["validation"], snap["misses"] = list(values["validation"]), dict(values["misses"])
            snap["hook_errors"] = list(values["hook_errors"])
            cache[k] = (rec, snap, dump)
        return out

    @classmethod
    def from_state(cls, state: dict[str, Any], budget: Budget) -> RunContext:
        """Rebuild a context from :meth:`to_state` output (for resuming)."""
        ctx = cls(state["lead_id"], state["route"], dict(state["input"]), budget, state.get("run_id"))
        ctx.steps = {k: StepRecord.model_validate(v) for k, v in state.get("steps", {}).items()}
        ctx.outcomes = {k: dict(v) for k, v in state.get("outcomes", {}).items()}
        ctx.provenance = {k: Provenance.model_validate(v) for k, v in state.get("provenance", {}).items()}
        budget.spent_micros = int(state.get("spent_micros", 0))
        ctx.errors = list(state.get("errors", []))
        ctx.status = state.get("status", "running")
        ctx.reason = state.get("reason")
        ctx.cause = state.get("cause")
        ctx.resumed = True
        return ctx

    def reopen(self) -> None:
        """Make a ``held`` lead run again: the steps that held it, and those skipped because it
        was held, start afresh (what they cost so far stays booked)."""
        for sid, rec in list(self.steps.items()):
            if rec.held or (rec.status == "skipped" and rec.reason == "stopped"):
                self.steps[sid] = StepRecord(cost=rec.cost, attempts=0, in_doubt=rec.in_doubt,
                                             intent=rec.intent, pending_cost=rec.pending_cost)
        self.status, self.reason, self.cause = "running", None, None

    def result(self) -> LeadResult:
        """The lead's :class:`LeadResult` as it stands."""
        return LeadResult.model_construct(
            lead_id=self.lead_id,
            route=self.route,
            status=self.status,
            reason=self.reason,
            data=self.data,
            steps=self.steps,
            costs=self.costs,
            total_cost=self.total_cost,
            provenance=self.provenance,
            errors=self.errors,
            resumed=self.resumed,
            cause=self.cause,
        )
