"""``waystation estimate``: forecast what a file will cost on a route, before anything is spent.

The model (docs/cost.md explains it with a worked example):

1. **Sample.** The input is streamed once; a seeded reservoir keeps ``sample`` good records
   (default 200) and counts all of them (``leads``). Memory is the sample, whatever the file size.
2. **Walk each sampled lead through the route.** Steps are visited in dependency order with the
   engine's rules: disabled / not installed, ``condition``, missing requirements, ``fallback``
   already satisfied, per-lead budget, an earlier stop. *Free* stations whose inputs are known
   run for real (``process`` is called; a free step that fails counts as providing nothing).
   *Paid* stations are never called: each is a random outcome — which of its fields come back
   together ("patterns") and with what probability — so a lead becomes a tree of branches and
   every later condition and waterfall follows the branch's fields. A free step whose inputs come
   from a paid step's (unknown) answer is modelled the same way, and so is a station declaring
   ``side_effects`` (a save): it is never run.
3. **Outcome probabilities** come from the run history (:mod:`waystation.history`): the same
   route's runs of that step first, else any route's runs of that station, else the station's
   declared ``hit_prior``, else *no history*: the step is assumed to hit always or never,
   whichever costs more for this file (both are tried for up to six such steps), and flagged.
   The price of a call is the history's average charge per call, else the declared cost.
4. **Figures.** Per step: ``p_run`` (probability a lead reaches a call of it), expected calls
   (``leads x p_run``), expected cost, expected hits, cost per hit. For the file: the expected
   total and a range ``low``-``high``: expected ± 1.96 standard deviations, the deviation
   combining (a) the randomness of each lead's outcomes (variance over its branches, leads
   independent), (b) the sampling error of the sample's mean cost (finite-population corrected),
   (c) the uncertainty of each history-based hit rate (its binomial standard error, propagated by
   recomputing the total with the rate moved one standard error each way). With *no history*
   steps, ``low`` starts from the cheapest assignment instead. ``budget_total`` is ``high``
   rounded up to the cent: the ``--budget-total`` the run would need. ``dominant`` lists the
   steps that together make at least 80 % of the expected total.

Assumptions: leads of the file are like the sample and like the history's leads; a step's
outcome is independent of other steps' outcomes given the branch's fields; conditions comparing
a value that only a paid step would provide see a placeholder text; the lookup cache is not
counted (cached leads would cost less); per-step retries are inside the average charge per call;
a stop that a modelled step's answer would decide (a gate rejecting a lead) is not modelled, so the
steps after it are forecast as if they ran (the forecast errs high).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from waystation.history import HistoryStore, StepHistory
from waystation.station import Station, StepContext, Stop

if TYPE_CHECKING:
    from waystation.plan import Plan, PlannedStep

#: Default number of sampled leads.
DEFAULT_SAMPLE = 200
#: At most this many *no history* steps are searched for the worst case (2**n walks).
MAX_WORST_CASE = 6
_Z = 1.96
_PRUNE = 1e-12


class Unknown(str):
    """The placeholder value of a field a modelled (never called) step would provide."""

    __slots__ = ()


UNKNOWN = Unknown("<unknown>")
Pattern = tuple[str, ...]


def input_key(path: str | Path) -> str:
    """How an input file is recognised between ``estimate`` and ``run``: absolute path and size."""
    p = Path(path).resolve()
    try:
        size = p.stat().st_size
    except OSError:
        size = -1
    return f"{p}:{size}"


# ============================================================================ sampling


def sample_file(path: Path, fmt: str, n: int, seed: int, max_field_size: int = 1 << 20
                ) -> tuple[list[dict[str, Any]], int, int]:
    """A seeded reservoir sample of ``n`` good records of a CSV/JSONL file, streamed.

    Returns ``(sample in file order, good records, rejected records)``."""
    from waystation.batch import open_reader

    rng = random.Random(seed)
    keep: list[tuple[int, dict[str, Any]]] = []
    good = rejected = 0
    reader = open_reader(path, fmt, max_field_size)  # type: ignore[arg-type]
    try:
        for rec in reader:
            if rec.lead is None or rec.error is not None:
                rejected += 1
                continue
            if good < n:
                keep.append((good, rec.lead))
            else:
                j = rng.randrange(good + 1)
                if j < n:
                    keep[j] = (good, rec.lead)
            good += 1
    finally:
        reader.close()
    keep.sort(key=lambda t: t[0])
    return [lead for _, lead in keep], good, rejected


# ============================================================================ the step models


@dataclass
class StepModel:
    """How the forecast treats one step: run for real, or a random outcome over ``patterns``."""

    step: str
    station: str
    paid: bool
    cost_per_call: float
    patterns: list[tuple[Pattern, float]] = field(default_factory=list)
    source: str = "real"
    observations: int = 0
    no_history: bool = False

    @property
    def hit_probability(self) -> float:
        """The probability that a call provides at least one field."""
        return sum(q for pat, q in self.patterns if pat)

    def with_hit_probability(self, p: float) -> list[tuple[Pattern, float]]:
        """The patterns rescaled so that a hit has probability ``p`` (a miss ``1 - p``)."""
        p = min(1.0, max(0.0, p))
        hit = self.hit_probability
        hits = [(pat, q) for pat, q in self.patterns if pat]
        if not hits:
            hits = [(("*",), 1.0)]
            hit = 1.0
        out = [(pat, q / hit * p) for pat, q in hits] if hit > 0 else [(hits[0][0], p)]
        return [*out, ((), 1.0 - p)]


def _patterns_from(fig: StepHistory) -> tuple[list[tuple[Pattern, float]], int]:
    """Outcome distribution of one step from its history: patterns over answers and failures."""
    total = fig.answers + fig.failed
    if total <= 0:
        return [], 0
    dist: dict[Pattern, float] = {}
    for key, count in fig.patterns.items():
        pat: Pattern = tuple(sorted(k for k in key.split(",") if k))
        dist[pat] = dist.get(pat, 0.0) + count / total
    if fig.failed:
        dist[()] = dist.get((), 0.0) + fig.failed / total
    return sorted(dist.items()), total


def _merge(figs: Iterable[StepHistory]) -> StepHistory | None:
    out: StepHistory | None = None
    for f in figs:
        out = f if out is None else out.merged(f)
    return out


async def step_models(plan: Plan, history: HistoryStore | None) -> dict[str, StepModel]:
    """The model of every modelled-or-real step (see the module docstring for the precedence)."""
    runs = await history.runs() if history is not None else []
    models: dict[str, StepModel] = {}
    for ps in plan.steps:
        if ps.station is None:
            continue
        cls = ps.station
        same = _merge(s for r in runs if r.route == plan.name for s in r.steps
                      if s.step == ps.id and s.station == cls.name)
        anyr = _merge(s for r in runs for s in r.steps if s.station == cls.name)
        model = StepModel(ps.id, cls.name, ps.paid, ps.cost)
        for fig, label in ((same, "history: this route"), (anyr, "history: any route")):
            if fig is None:
                continue
            pats, total = _patterns_from(fig)
            if total:
                model.patterns, model.observations = pats, total
                model.source = f"{label} ({total} answers)"
                if fig.runs:
                    model.cost_per_call = fig.cost / fig.runs
                break
        if not model.patterns:
            fields = tuple(sorted(ps.provides))
            if cls.hit_prior is not None:
                p = float(cls.hit_prior)
                model.patterns = [(fields, p), ((), 1.0 - p)]
                model.source = "declared prior"
            elif not ps.paid and cls.side_effects:  # a save or a send: assumed to succeed
                model.patterns = [(fields, 1.0), ((), 0.0)]
                model.source = "not run (side effects): assumed to succeed"
            else:
                model.patterns = [(fields, 1.0), ((), 0.0)]
                model.source = "no history"
                model.no_history = True
        models[ps.id] = model
    return models


def _never_run(ps: PlannedStep) -> bool:
    return ps.paid or bool(ps.station is not None and ps.station.side_effects)


def modelled_steps(plan: Plan) -> set[str]:
    """Steps that may be modelled rather than run: paid ones, free ones with side effects, and free
    ones reading a field that a modelled step provides (transitively)."""
    out: set[str] = set()
    unknown_fields: set[str] = set()
    for ps in sorted(plan.steps, key=lambda s: (s.level, s.index)):
        if not ps.runnable:
            continue
        if _never_run(ps) or any(f in unknown_fields for f in (*ps.requires, *ps.optional)):
            out.add(ps.id)
            unknown_fields.update(ps.provides)
    return out


# ============================================================================ walking the tree


@dataclass
class _Acc:
    p_run: float = 0.0
    cost: float = 0.0
    hits: float = 0.0


@dataclass
class _LeadFigures:
    steps: dict[str, _Acc]
    mean: float
    var: float


class _Walker:
    """Walks sampled leads through the plan (see the module docstring, step 2)."""

    def __init__(self, plan: Plan, models: Mapping[str, StepModel], host_stations: Mapping[int, Station]) -> None:
        self.plan = plan
        self.models = models
        self.instances = host_stations
        self.order = sorted(plan.steps, key=lambda s: (s.level, s.index))
        self.memo: dict[tuple[str, str], tuple[dict[str, Any], Stop]] = {}
        self.free_errors: dict[str, int] = {}

    def _view(self, ps: PlannedStep, lead: Mapping[str, Any], outcomes: Mapping[str, dict[str, Any]]
              ) -> dict[str, Any]:
        data = dict(lead)
        steps = self.plan.steps
        for a in ps.ancestors:
            other = steps[a]
            fields = outcomes.get(other.id)
            if not fields:
                continue
            for k, v in fields.items():
                if other.fallback_fields and data.get(k) not in (None, ""):
                    continue
                data[k] = v
        return data

    async def _real(self, ps: PlannedStep, view: Mapping[str, Any], lead_id: str) -> tuple[dict[str, Any], Stop]:
        key = (ps.id, json.dumps({k: view.get(k) for k in (*ps.requires, *ps.optional)}, sort_keys=True, default=str))
        got = self.memo.get(key)
        if got is not None:
            return got
        station = self.instances[ps.index]
        assert ps.settings is not None
        ctx = StepContext(view, lead_id=lead_id, step_id=ps.id, route=self.plan.name, run_id="estimate",
                          settings=ps.settings, budget=None)
        try:
            if ps.timeout is not None:
                async with asyncio.timeout(ps.timeout):
                    out = await station.process(ctx)
            else:
                out = await station.process(ctx)
            fields = {k: v for k, v in out.fields.items() if v is not None and k in ps.provides}
            result = (fields, out.stop)
        except Exception:
            self.free_errors[ps.id] = self.free_errors.get(ps.id, 0) + 1
            result = ({}, Stop.CONTINUE)
        self.memo[key] = result
        return result

    async def walk(self, lead: Mapping[str, Any], lead_id: str, overrides: Mapping[str, list[tuple[Pattern, float]]]
                   ) -> _LeadFigures:
        acc = {ps.id: _Acc() for ps in self.plan.steps}
        leaves: list[tuple[float, float]] = []
        budget = self.plan.budget

        async def go(i: int, prob: float, outcomes: dict[str, dict[str, Any]], spent: float, cost: float) -> None:
            while i < len(self.order):
                ps = self.order[i]
                i += 1
                if not ps.runnable:
                    continue
                view = self._view(ps, lead, outcomes)
                if ps.condition is not None and not ps.condition.evaluate(view):
                    continue
                if any(view.get(f) in (None, "") for f in ps.requires):
                    continue
                if ps.fallback_fields and all(view.get(f) not in (None, "") for f in ps.fallback_fields):
                    continue
                model = self.models[ps.id]
                if budget is not None and ps.cost > 0 and spent + ps.cost > budget + 1e-12:
                    continue
                unknown_input = any(isinstance(view.get(f), Unknown) for f in (*ps.requires, *ps.optional))
                a = acc[ps.id]
                a.p_run += prob
                if not _never_run(ps) and not unknown_input:
                    fields, stop = await self._real(ps, view, lead_id)
                    if fields:
                        a.hits += prob
                        outcomes = {**outcomes, ps.id: fields}
                    if stop is not Stop.CONTINUE:
                        break
                    continue
                price = model.cost_per_call
                a.cost += prob * price
                dist = overrides.get(ps.id, model.patterns)
                for pat, q in dist:
                    if q <= 0 or prob * q < _PRUNE:
                        continue
                    if pat:
                        a.hits += prob * q
                    branch = {**outcomes, ps.id: {f: UNKNOWN for f in pat if f in ps.provides}}
                    await go(i, prob * q, branch, spent + price, cost + price)
                return
            leaves.append((prob, cost))

        await go(0, 1.0, {}, 0.0, 0.0)
        total_p = sum(p for p, _ in leaves) or 1.0
        mean = sum(p * c for p, c in leaves) / total_p
        var = max(0.0, sum(p * c * c for p, c in leaves) / total_p - mean * mean)
        return _LeadFigures(acc, mean, var)


# ============================================================================ the forecast


@dataclass
class _Pass:
    per_lead: list[_LeadFigures]

    @property
    def mean(self) -> float:
        return sum(x.mean for x in self.per_lead) / max(1, len(self.per_lead))


async def _pass(walker: _Walker, sample: Sequence[Mapping[str, Any]],
                overrides: Mapping[str, list[tuple[Pattern, float]]]) -> _Pass:
    from waystation.engine import lead_id_of

    out = []
    for lead in sample:
        out.append(await walker.walk(lead, lead_id_of(lead), overrides))
    return _Pass(out)


async def forecast(plan: Plan, sample: Sequence[Mapping[str, Any]], leads: int, history: HistoryStore | None,
                   *, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The forecast document (the ``--json`` shape; see the module docstring)."""
    models = await step_models(plan, history)
    instances: dict[int, Station] = {}
    for ps in plan.steps:
        if ps.runnable and not _never_run(ps) and ps.station is not None:
            inst = ps.station(ps.settings)
            await inst.open()
            instances[ps.index] = inst
    try:
        walker = _Walker(plan, models, instances)
        modelled = modelled_steps(plan)
        unknown = [sid for sid, m in models.items() if m.no_history and sid in modelled]
        searched = unknown[:MAX_WORST_CASE]
        options: list[dict[str, list[tuple[Pattern, float]]]] = []
        for bits in itertools.product((1.0, 0.0), repeat=len(searched)):
            options.append({sid: models[sid].with_hit_probability(b) for sid, b in zip(searched, bits, strict=True)})
        passes = [await _pass(walker, sample, o) for o in options] if sample else []
        if passes:
            best_i = min(range(len(passes)), key=lambda k: passes[k].mean)
            worst_i = max(range(len(passes)), key=lambda k: passes[k].mean)
            main, overrides = passes[worst_i], options[worst_i]
        else:
            best_i = worst_i = 0
            main, overrides = _Pass([]), {}
        n = len(sample)
        # (a) outcome randomness, (b) sampling error, (c) hit-rate uncertainty
        var = leads * (sum(x.var for x in main.per_lead) / n) if n else 0.0
        if n > 1:
            mu = main.mean
            s2 = sum((x.mean - mu) ** 2 for x in main.per_lead) / (n - 1)
            var += leads * leads * max(0.0, 1 - n / max(leads, n)) * s2 / n
        for sid, m in models.items():
            if m.no_history or m.observations <= 0 or sid not in modelled:
                continue
            p = m.hit_probability
            se = math.sqrt(max(p * (1 - p), 0.0) / m.observations)
            if se <= 0 or not sample:
                continue
            up = await _pass(walker, sample, {**overrides, sid: m.with_hit_probability(p + se)})
            down = await _pass(walker, sample, {**overrides, sid: m.with_hit_probability(p - se)})
            var += (leads * (up.mean - down.mean) / 2) ** 2
        expected = leads * main.mean
        sd = math.sqrt(var)
        low_base = leads * passes[best_i].mean if passes else 0.0
        total = {"expected": round(expected, 6), "low": round(max(0.0, low_base - _Z * sd), 6),
                 "high": round(expected + _Z * sd, 6)}
        steps: list[dict[str, Any]] = []
        for ps in plan.steps:
            mdl = models.get(ps.id)
            a = [x.steps[ps.id] for x in main.per_lead]
            p_run = sum(x.p_run for x in a) / n if n else 0.0
            cost = leads * sum(x.cost for x in a) / n if n else 0.0
            hits = leads * sum(x.hits for x in a) / n if n else 0.0
            steps.append({
                "step": ps.id, "station": ps.spec.station, "paid": ps.paid,
                "modelled": ps.id in modelled,
                "source": (mdl.source if mdl is not None and ps.id in modelled else
                           "run for real" if ps.runnable else "not run"),
                "no_history": bool(mdl and mdl.no_history and ps.id in modelled),
                "hit_probability": round(mdl.hit_probability, 6) if mdl is not None and ps.paid else None,
                "cost_per_call": round(mdl.cost_per_call, 6) if mdl is not None else 0.0,
                "p_run": round(p_run, 6), "expected_calls": round(leads * p_run, 3),
                "expected_cost": round(cost, 6), "expected_hits": round(hits, 3),
                "cost_per_hit": round(cost / hits, 6) if hits > 0 and cost > 0 else None,
                "free_errors": walker.free_errors.get(ps.id, 0),
            })
        ranked = sorted(steps, key=lambda s: s["expected_cost"], reverse=True)
        dominant: list[str] = []
        covered = 0.0
        for s in ranked:
            if s["expected_cost"] <= 0 or (expected > 0 and covered >= 0.8 * expected):
                break
            dominant.append(s["step"])
            covered += s["expected_cost"]
        doc: dict[str, Any] = {
            "route": plan.name, "leads": leads, "sample": n,
            "total": total, "budget_total": math.ceil(total["high"] * 100 - 1e-9) / 100,
            "dominant": dominant, "steps": steps,
            "no_history": [s["step"] for s in steps if s["no_history"]],
            "created_at": time.time(),
        }
        doc.update(extra or {})
        return doc
    finally:
        for inst in instances.values():
            with contextlib.suppress(Exception):  # best effort
                await inst.close()


def forecast_vs_actual(estimate: Mapping[str, Any], report: Mapping[str, Any]) -> dict[str, Any]:
    """Rows comparing a forecast with a run's report (``report.as_dict()`` form): per step the
    forecast and actual calls and cost, and the totals."""
    actual = {s["step"]: s for s in report.get("stations", [])}
    rows = []
    for s in estimate.get("steps", []):
        a = actual.get(s["step"], {})
        rows.append({"step": s["step"], "forecast_calls": s["expected_calls"], "actual_calls": a.get("runs", 0),
                     "forecast_cost": s["expected_cost"], "actual_cost": a.get("cost", 0.0)})
    return {"leads": estimate.get("leads"), "total": estimate.get("total"),
            "actual_total": report.get("total_cost", 0.0), "steps": rows,
            "estimated_at": estimate.get("created_at")}
