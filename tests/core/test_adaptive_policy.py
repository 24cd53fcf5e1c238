"""The adaptive waterfall's ordering policy: orders, learning, exploration, pauses (hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from waystation.adaptive import AdaptivePolicy, AdaptiveSettings, Provider
from waystation.stats import stable_unit


def _hit(step: str, n: int, rate: float) -> bool:
    """A deterministic hit sequence with very nearly ``rate`` hits in any run of calls."""
    return stable_unit(step, str(n)) < rate


def feed(policy: AdaptivePolicy, step: str, calls: int, rate: float, cost: float, start: int = 0,
         segment: str | None = None) -> None:
    for n in range(start, start + calls):
        policy.observe(step, segment, cost, _hit(step, n, rate))


providers_st = st.lists(
    st.tuples(st.floats(0.0, 1.0), st.floats(0.01, 0.99)), min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(providers_st, st.floats(0.0, 0.5), st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=30))
def test_an_order_is_a_permutation_sorted_by_cost_per_hit(specs: list[tuple[float, float]], exploration: float,
                                                          leads: list[str]) -> None:
    provs = [Provider(f"s{i}", f"S{i}", cost) for i, (cost, _) in enumerate(specs)]
    pol = AdaptivePolicy("c", provs, AdaptiveSettings(exploration=exploration))
    for i, (cost, rate) in enumerate(specs):
        feed(pol, f"s{i}", 50, rate, cost)
    names = {p.step for p in provs}
    for lead in leads:
        o = pol.order(lead)
        assert sorted(o.steps) == sorted(names) and not o.paused  # nothing paused without a break-even
        assert o == pol.order(lead) or o.explore  # the same lead, the same order (state unchanged)
        if not o.explore:
            cph = [pol.cost_per_hit(s) for s in o.steps]
            assert cph == sorted(cph)
    assert pol.leads == 2 * len(leads)


def test_ties_keep_the_written_order_and_cold_start_uses_declared_costs() -> None:
    pol = AdaptivePolicy("c", [Provider("a", "A", 0.1), Provider("b", "B", 0.1), Provider("c", "C", 0.05)],
                         AdaptiveSettings(exploration=0))
    assert pol.order("x").steps == ("c", "a", "b")
    pol2 = AdaptivePolicy("c", [Provider("a", "A", 0.1, hit_prior=0.2), Provider("b", "B", 0.1, hit_prior=0.8)],
                          AdaptiveSettings(exploration=0))
    assert pol2.order("x").steps == ("b", "a")


@settings(max_examples=40, deadline=None)
@given(st.floats(0.05, 0.95), st.floats(0.001, 1.0))
def test_estimates_converge_to_what_the_vendor_does(rate: float, cost: float) -> None:
    pol = AdaptivePolicy("c", [Provider("a", "A", cost * 3)], AdaptiveSettings(exploration=0, memory=400))
    feed(pol, "a", 3000, rate, cost)
    assert pol.hit_rate("a") == pytest.approx(rate, abs=0.06)
    assert pol.cost_per_call("a") == pytest.approx(cost, rel=0.02)
    assert pol.cost_per_hit("a") == pytest.approx(pol.cost_per_call("a") / pol.hit_rate("a"))


def test_exploration_share_is_kept_and_stable_per_lead() -> None:
    pol = AdaptivePolicy("c", [Provider("a", "A", 0.1), Provider("b", "B", 0.2)], AdaptiveSettings(exploration=0.05))
    leads = [f"L{i}" for i in range(10000)]
    explored = [pol.order(lid).explore for lid in leads]
    assert 0.04 <= sum(explored) / len(leads) <= 0.06
    assert explored == [pol.order(lid).explore for lid in leads]
    assert pol.explored == 2 * sum(explored)
    orders = {pol.order(lid).steps for lid, e in zip(leads, explored, strict=True) if e}
    assert orders == {("a", "b"), ("b", "a")}  # exploring leads try every order
    none = AdaptivePolicy("c", [Provider("a", "A", 0.1)], AdaptiveSettings(exploration=0.0))
    assert not any(none.order(lid).explore for lid in leads[:2000])


def test_a_vendor_whose_hit_rate_drops_is_moved_down_then_paused_in_the_same_run() -> None:
    pol = AdaptivePolicy("c", [Provider("good", "G", 0.10), Provider("drop", "D", 0.04)],
                         AdaptiveSettings(exploration=0, break_even=0.30))
    feed(pol, "good", 300, 0.7, 0.10)
    feed(pol, "drop", 300, 0.6, 0.04)
    assert pol.order("x").steps == ("drop", "good")  # cheap and good: first
    feed(pol, "drop", 200, 0.05, 0.04, start=300)
    assert pol.order("y").steps[0] == "good"  # moved down
    feed(pol, "drop", 600, 0.05, 0.04, start=500)
    assert pol.is_paused("drop")
    o = pol.order("z")
    assert o.steps == ("good",) and o.paused == ("drop",)
    (event,) = pol.events
    assert event.step == "drop" and event.action == "paused" and 300 < event.calls <= 1100
    assert "break-even" in event.reason
    summary = pol.summary()
    assert [p["paused"] for p in summary["providers"]] == [False, True]
    assert summary["pauses"][0]["action"] == "paused"
    # it recovers: probes (exploration) see hits again and it is resumed
    feed(pol, "drop", 600, 0.6, 0.04, start=1100)
    assert not pol.is_paused("drop") and pol.events[-1].action == "resumed"


@settings(max_examples=40, deadline=None)
@given(st.floats(0.01, 1.0), st.floats(0.0, 1.0), st.integers(0, 200))
def test_never_paused_before_min_calls_or_without_a_break_even(cost: float, rate: float, calls: int) -> None:
    pol = AdaptivePolicy("c", [Provider("a", "A", cost)], AdaptiveSettings(break_even=None))
    feed(pol, "a", calls, rate, cost)
    assert not pol.is_paused("a")
    gated = AdaptivePolicy("c", [Provider("a", "A", cost)], AdaptiveSettings(break_even=0.001, min_calls=calls + 1))
    feed(gated, "a", calls, rate, cost)
    assert not gated.is_paused("a")


@settings(max_examples=40, deadline=None)
@given(st.floats(0.02, 0.98), st.floats(0.01, 0.5), st.floats(0.05, 2.0))
def test_a_pause_needs_evidence_past_the_break_even(rate: float, cost: float, break_even: float) -> None:
    pol = AdaptivePolicy("c", [Provider("a", "A", cost)], AdaptiveSettings(break_even=break_even))
    feed(pol, "a", 400, rate, cost)
    true_cph = cost / rate
    if pol.is_paused("a"):
        # paused: even the optimistic end of the interval was past the break-even
        assert true_cph > break_even * 0.7
    if true_cph > break_even * 2:
        assert pol.is_paused("a")


def test_history_seed_is_capped_so_the_run_takes_over() -> None:
    pol = AdaptivePolicy("c", [Provider("a", "A", 0.1), Provider("b", "B", 0.1)],
                         AdaptiveSettings(exploration=0, prior_weight=50))
    pol.seed("a", calls=100000, hits=90000, cost=10000.0)  # a great history...
    pol.seed("b", calls=100000, hits=30000, cost=10000.0)
    assert pol.order("x").steps == ("a", "b")
    assert pol.hit_rate("a") == pytest.approx(0.9, abs=0.05)
    feed(pol, "a", 150, 0.1, 0.1)  # ...that this run contradicts
    feed(pol, "b", 150, 0.5, 0.1)
    assert pol.order("y").steps == ("b", "a")
    pol.seed("nope", 10, 5, 1.0)  # an unknown step is ignored


def test_segments_learn_their_own_order_and_share_the_rest() -> None:
    pol = AdaptivePolicy("c", [Provider("a", "A", 0.1), Provider("b", "B", 0.1)],
                         AdaptiveSettings(exploration=0, segment="state"))
    feed(pol, "a", 300, 0.8, 0.1, segment="CA")
    feed(pol, "b", 300, 0.3, 0.1, segment="CA")
    feed(pol, "a", 300, 0.2, 0.1, segment="TX", start=300)
    feed(pol, "b", 300, 0.7, 0.1, segment="TX", start=300)
    assert pol.order("x", "CA").steps == ("a", "b")
    assert pol.order("x", "TX").steps == ("b", "a")
    assert pol.order("x", "NY").steps == pol.order("x", None).steps  # unseen: the chain-wide order
    assert pol.order("x", "CA").segment == "CA"
    flat = AdaptivePolicy("c", [Provider("a", "A", 0.1)], AdaptiveSettings())
    assert flat.order("x", "CA").segment is None  # no segment setting: values are ignored


def test_a_provider_expected_never_to_hit_goes_last() -> None:
    pol = AdaptivePolicy("c", [Provider("never", "N", 0.1), Provider("ok", "O", 0.5)],
                         AdaptiveSettings(exploration=0, memory=1e9))
    feed(pol, "never", 2000, 0.0, 0.1)
    feed(pol, "ok", 50, 0.5, 0.5)
    assert pol.order("x").steps == ("ok", "never")
    assert math.isfinite(pol.cost_per_hit("never"))  # shrunk, never exactly zero
    with pytest.raises(ValueError):
        AdaptivePolicy("c", [])
