"""Adaptive waterfalls: the order of a chain of fallback providers, learned per lead.

A route's chain of providers for the same fields (a step followed by ``fallback`` steps) may say
``order: adaptive`` on its first step. The engine then asks an :class:`AdaptivePolicy` for each
lead's order instead of running the providers as written:

- **Expected cost per hit.** Each provider's hit probability and cost per call are estimated from
  what it did (decayed counts, so that recent calls weigh more: ``memory`` calls is the half-life),
  started from the run history (:func:`priors_from_history`; at most ``prior_weight`` calls' worth,
  so evidence of this run takes over quickly) or, with no history, from the station's declared
  cost and ``hit_prior``. Providers run in ascending ``cost per call / hit probability`` — the order
  that minimises the expected cost of a waterfall whose providers hit independently. Ties keep the
  route's written order.
- **Segments.** With ``segment: state`` each value of the lead's ``state`` field has its own
  estimates, shrunk towards the chain-wide ones while a segment has few calls.
- **Exploration.** A share of the leads (``exploration``, default 5 %; chosen by a stable hash of
  the lead id, so a resumed lead explores the same way) runs the providers in a random order —
  paused ones included — so that every estimate stays fresh.
- **Break-even.** With ``break_even: 0.40`` (USD per hit) a provider whose cost per hit is past the
  break-even even at the optimistic end of its 95 % interval (after ``min_calls`` calls) is
  *paused*: ordinary leads no longer call it, exploration still probes it, and it is resumed when
  its cost per hit comes back under the break-even. Pauses are kept as events for the report.
- **Learning within a run.** :meth:`AdaptivePolicy.observe` is called as each provider's call
  ends, so a vendor whose hit rate drops halfway through a run is moved down and paused in the
  same run.

The policy is plain, synchronous state owned by one engine (one process); nothing here does I/O
except :func:`priors_from_history`, which reads a history store once before a run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from waystation.stats import stable_unit, wilson

#: default share of leads that run the chain in a random order
DEFAULT_EXPLORATION = 0.05
#: default half-life of the estimates, in calls of one provider
DEFAULT_MEMORY = 200.0
#: default calls before a provider may be paused (or resumed)
DEFAULT_MIN_CALLS = 30
#: default most calls' worth of history an estimate starts from
DEFAULT_PRIOR_WEIGHT = 50.0
#: pseudo-calls of the hit probability a provider with no history starts from
_COLD_WEIGHT = 2.0
#: hit probability assumed of a station that declares no ``hit_prior``
_COLD_HIT = 0.5
#: pseudo-calls pulling a segment's estimate towards the chain-wide one
_SEGMENT_SHRINK = 20.0
#: most segments kept per chain (further values share the chain-wide estimates)
MAX_SEGMENTS = 1000


@dataclass(frozen=True)
class Provider:
    """One provider of an adaptive chain: its step id, station name, declared cost per call and
    declared hit probability (``None``: not declared)."""

    step: str
    station: str
    cost: float
    hit_prior: float | None = None


@dataclass(frozen=True)
class AdaptiveSettings:
    """How a chain adapts (route keys of the chain's first step; see the module docstring)."""

    exploration: float = DEFAULT_EXPLORATION
    break_even: float | None = None
    segment: str | None = None
    memory: float = DEFAULT_MEMORY
    min_calls: int = DEFAULT_MIN_CALLS
    prior_weight: float = DEFAULT_PRIOR_WEIGHT


@dataclass
class Estimate:
    """Decayed counts of one provider (in one segment): calls, hits, and what the calls cost."""

    calls: float = 0.0
    hits: float = 0.0
    cost: float = 0.0
    #: calls observed in this run (not decayed, history not included)
    seen: int = 0

    def add(self, cost: float, hit: bool, decay: float) -> None:
        """One call: the older counts decay by ``decay`` first."""
        self.calls = self.calls * decay + 1.0
        self.hits = self.hits * decay + (1.0 if hit else 0.0)
        self.cost = self.cost * decay + cost
        self.seen += 1

    def hit_rate(self, prior: float, weight: float) -> float:
        """The hit probability, shrunk towards ``prior`` by ``weight`` pseudo-calls."""
        return (self.hits + prior * weight) / (self.calls + weight) if self.calls + weight > 0 else prior

    def cost_per_call(self, prior: float, weight: float) -> float:
        """The cost of one call, shrunk towards ``prior`` by ``weight`` pseudo-calls."""
        return (self.cost + prior * weight) / (self.calls + weight) if self.calls + weight > 0 else prior


@dataclass(frozen=True)
class Ordering:
    """One lead's order: the providers' step ids to run in order (paused ones left out), whether
    the lead explores, and the providers left out because they are paused."""

    steps: tuple[str, ...]
    explore: bool = False
    paused: tuple[str, ...] = ()
    segment: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form kept in the lead's state."""
        out: dict[str, Any] = {"order": list(self.steps)}
        if self.explore:
            out["explore"] = True
        if self.paused:
            out["paused"] = list(self.paused)
        if self.segment is not None:
            out["segment"] = self.segment
        return out


@dataclass
class PauseEvent:
    """A provider paused or resumed: when (its calls so far in this run), why."""

    step: str
    action: str  # "paused" | "resumed"
    calls: int
    leads: int
    cost_per_hit: float | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"step": self.step, "action": self.action, "calls": self.calls, "leads": self.leads,
                "cost_per_hit": self.cost_per_hit, "reason": self.reason}


@dataclass
class _Provider:
    info: Provider
    index: int
    overall: Estimate = field(default_factory=Estimate)
    segments: dict[str, Estimate] = field(default_factory=dict)
    prior_hit: float = _COLD_HIT
    prior_weight: float = _COLD_WEIGHT
    paused: bool = False


class AdaptivePolicy:
    """The learned order of one adaptive chain (see the module docstring).

    ``order(lead_id, segment)`` gives a lead's :class:`Ordering`; ``observe(step, segment, cost,
    hit)`` feeds one ended call back; ``seed(...)`` starts a provider from history figures;
    ``summary()`` is the report's view (estimates, pauses, how many leads used each order)."""

    def __init__(self, chain: str, providers: Sequence[Provider], settings: AdaptiveSettings | None = None
                 ) -> None:
        if not providers:
            raise ValueError("an adaptive chain needs at least one provider")
        self.chain = chain
        self.settings = settings or AdaptiveSettings()
        self._decay = 0.5 ** (1.0 / self.settings.memory) if self.settings.memory > 0 else 0.0
        self._providers: dict[str, _Provider] = {}
        for i, p in enumerate(providers):
            st = _Provider(p, i)
            if p.hit_prior is not None:
                st.prior_hit = min(1.0, max(0.0, float(p.hit_prior)))
            self._providers[p.step] = st
        self.events: list[PauseEvent] = []
        self.orders: dict[str, int] = {}
        self.leads = 0
        self.explored = 0

    # -- learning -------------------------------------------------------------------------------

    def seed(self, step: str, calls: float, hits: float, cost: float) -> None:
        """Start ``step``'s estimate from history figures (``calls`` vendor calls, ``hits`` of
        them with a value, ``cost`` in total), scaled down to at most ``prior_weight`` calls."""
        st = self._providers.get(step)
        if st is None or calls <= 0:
            return
        hits = min(max(hits, 0.0), calls)
        scale = min(1.0, self.settings.prior_weight / calls)
        est = st.overall
        est.calls += calls * scale
        est.hits += hits * scale
        est.cost += max(cost, 0.0) * scale
        self._judge(st)

    def observe(self, step: str, segment: str | None, cost: float, hit: bool) -> None:
        """One call of ``step`` ended (``hit``: it provided a value) and cost ``cost``."""
        st = self._providers.get(step)
        if st is None:
            return
        cost = max(0.0, float(cost))
        st.overall.add(cost, hit, self._decay)
        if segment is not None and self.settings.segment is not None:
            seg = st.segments.get(segment)
            if seg is None and len(st.segments) < MAX_SEGMENTS:
                seg = st.segments[segment] = Estimate()
            if seg is not None:
                seg.add(cost, hit, self._decay)
        self._judge(st)

    # -- estimates ------------------------------------------------------------------------------

    def hit_rate(self, step: str, segment: str | None = None) -> float:
        """``step``'s estimated hit probability (in ``segment`` when the chain has segments)."""
        st = self._providers[step]
        overall = st.overall.hit_rate(st.prior_hit, st.prior_weight)
        seg = st.segments.get(segment) if segment is not None else None
        return overall if seg is None else seg.hit_rate(overall, _SEGMENT_SHRINK)

    def cost_per_call(self, step: str, segment: str | None = None) -> float:
        """``step``'s estimated cost of one call."""
        st = self._providers[step]
        overall = st.overall.cost_per_call(st.info.cost, _COLD_WEIGHT)
        seg = st.segments.get(segment) if segment is not None else None
        return overall if seg is None else seg.cost_per_call(overall, _SEGMENT_SHRINK)

    def cost_per_hit(self, step: str, segment: str | None = None) -> float:
        """``cost_per_call / hit_rate`` (``inf`` for a provider expected never to hit)."""
        p = self.hit_rate(step, segment)
        c = self.cost_per_call(step, segment)
        if p <= 0:
            return math.inf if c > 0 else 0.0
        return c / p

    def is_paused(self, step: str) -> bool:
        """Whether ``step`` is paused (ordinary leads do not call it)."""
        return self._providers[step].paused

    def _judge(self, st: _Provider) -> None:
        """Pause or resume ``st`` against the break-even (see the module docstring)."""
        limit = self.settings.break_even
        est = st.overall
        if limit is None or est.calls < self.settings.min_calls:
            return
        cost = est.cost_per_call(st.info.cost, _COLD_WEIGHT)
        n = max(1, round(est.calls))
        _, high = wilson(min(n, round(est.hits)), n)
        best = cost / high if high > 0 else math.inf  # cost per hit at the optimistic end
        point = self.cost_per_hit(st.info.step)
        if not st.paused and best > limit:
            st.paused = True
            self.events.append(PauseEvent(
                st.info.step, "paused", est.seen, self.leads, _finite(point),
                f"cost per hit ${point:.4g} is past the break-even ${limit:g} (at best ${best:.4g}, "
                f"hit rate {est.hits / est.calls:.1%} of the last ~{est.calls:.0f} calls)"))
        elif st.paused and point <= limit:
            st.paused = False
            self.events.append(PauseEvent(
                st.info.step, "resumed", est.seen, self.leads, _finite(point),
                f"cost per hit ${point:.4g} is back under the break-even ${limit:g}"))

    # -- ordering -------------------------------------------------------------------------------

    def order(self, lead_id: str, segment: str | None = None) -> Ordering:
        """The order of the chain's providers for ``lead_id`` (and counts it for the report)."""
        seg = segment if self.settings.segment is not None else None
        providers = list(self._providers.values())
        share = self.settings.exploration
        explore = share > 0 and stable_unit("explore", self.chain, lead_id) < share
        if explore:
            keyed = sorted(providers, key=lambda p: stable_unit("shuffle", self.chain, lead_id, p.info.step))
            ordering = Ordering(tuple(p.info.step for p in keyed), True, (), seg)
        else:
            active = [p for p in providers if not p.paused]
            active.sort(key=lambda p: (self.cost_per_hit(p.info.step, seg), p.index))
            paused = tuple(p.info.step for p in providers if p.paused)
            ordering = Ordering(tuple(p.info.step for p in active), False, paused, seg)
        self.count(ordering)
        return ordering

    def count(self, ordering: Ordering) -> None:
        """Count a lead's order in the report's figures (``order`` does; a resumed lead whose order
        was saved is counted through this)."""
        self.leads += 1
        if ordering.explore:
            self.explored += 1
        key = " > ".join(ordering.steps) or "(none: all paused)"
        self.orders[key] = self.orders.get(key, 0) + 1

    # -- report ---------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The chain's figures for the run report (JSON-able)."""
        providers = []
        for st in self._providers.values():
            est = st.overall
            providers.append({
                "step": st.info.step, "station": st.info.station, "calls": est.seen,
                "hit_rate": round(self.hit_rate(st.info.step), 6),
                "cost_per_call": round(self.cost_per_call(st.info.step), 6),
                "cost_per_hit": _finite(round(self.cost_per_hit(st.info.step), 6)),
                "paused": st.paused, "segments": len(st.segments)})
        return {"chain": self.chain, "leads": self.leads, "explored": self.explored,
                "settings": {"exploration": self.settings.exploration, "break_even": self.settings.break_even,
                             "segment": self.settings.segment, "memory": self.settings.memory,
                             "min_calls": self.settings.min_calls},
                "providers": providers,
                "orders": dict(sorted(self.orders.items(), key=lambda kv: (-kv[1], kv[0]))),
                "pauses": [e.as_dict() for e in self.events]}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
