"""Fuzzing the condition parser and the route loader with hypothesis.

Whatever the input, only waystation's own errors escape (``ConditionSyntaxError``,
``RouteError``), and the work done is bounded by the limits — asserted on counts (tree nodes,
YAML nodes, bytes), never on time.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from waystation.conditions import Condition, parse_condition
from waystation.errors import ConditionSyntaxError, RouteError
from waystation.limits import MAX_CONDITION_DEPTH, MAX_CONDITION_LENGTH, MAX_ROUTE_NODES
from waystation.route import Route, load_yaml

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- conditions -------------------------------------------------------------------------------

_PIECES = ["not ", "and ", "or ", "(", ")", "[", "]", ",", "exists ", "in ", "== ", "!= ", "< ", ">= ",
           "phone ", "zip.code ", "'x' ", '"y\\"" ', "12 ", "-3.5e7 ", "true ", "null ", " ", "__class__ ",
           "9" * 60 + " ", "'", "\\", "\x00", "é", "\udc80"]
condition_text = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(_PIECES), max_size=120).map("".join),
    st.integers(0, 200).map(lambda n: "not " * n + "x exists"),
    st.integers(0, 200).map(lambda n: "(" * n + "x exists" + ")" * n),
)
lead_values = st.one_of(st.none(), st.text(max_size=5), st.integers(), st.floats(allow_nan=True), st.booleans())
leads = st.dictionaries(st.sampled_from(["phone", "zip", "x", "y"]),
                        st.one_of(lead_values, st.dictionaries(st.just("code"), lead_values)), max_size=4)


def tree_size(node: Condition) -> tuple[int, int]:
    """(nodes, depth) of a parsed condition."""
    parts = getattr(node, "parts", None)
    if not parts:
        return 1, 1
    sizes = [tree_size(p) for p in parts]
    return 1 + sum(n for n, _ in sizes), 1 + max(d for _, d in sizes)


@FUZZ
@given(condition_text, leads)
def test_condition_parser_raises_only_its_own_error_and_stays_bounded(src: str, lead: dict[str, Any]) -> None:
    try:
        cond = parse_condition(src)
    except ConditionSyntaxError as exc:
        assert "\n" not in exc.reason
        return
    nodes, depth = tree_size(cond)
    assert len(src) <= MAX_CONDITION_LENGTH
    assert nodes <= len(src)  # every node of the tree consumed at least one character
    assert depth <= MAX_CONDITION_DEPTH + 2  # not/parens nesting, plus an and/or level and the test
    assert isinstance(cond.evaluate(lead), bool)  # evaluation never raises either


# -- routes -----------------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
yaml_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)), max_leaves=30)
route_like = st.fixed_dictionaries(
    {"name": st.one_of(st.text(max_size=10), scalars)},
    optional={"steps": st.lists(st.dictionaries(st.sampled_from(["station", "condition", "id", "after", "settings",
                                                                   "fallback", "enabled", "bogus"]),
                                                  yaml_values, max_size=4), max_size=6),
              "budget": scalars, "validate": scalars, "input": yaml_values})
_YAML_PIECES = ["&a ", "*a ", "&b [*a, *a, *a, *a] ", "*b ", "[", "]", "{", "}", ": ", "- ", "\n", "  ", "? ",
                "!!python/object:os.system ", "!!binary ", "%YAML 1.1\n", "---\n", "...\n", "'", '"', "name",
                "steps", "station: S", "<<: *a", "|\n", ">\n", "\t", "\x00", "\ufeff", "\udc80"]
yaml_text = st.one_of(
    st.text(max_size=400),
    st.lists(st.sampled_from(_YAML_PIECES), max_size=150).map("".join),
    route_like.map(lambda d: yaml.safe_dump(d, sort_keys=False)),
    st.integers(1, 30).map(lambda n: "a: &a [x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [*{'a' if i == 0 else 'a' + str(i - 1)}, *{'a' if i == 0 else 'a' + str(i - 1)}, "
        f"*{'a' if i == 0 else 'a' + str(i - 1)}]\n" for i in range(n))),
)


@FUZZ
@given(yaml_text)
def test_route_loader_raises_only_route_errors_and_stays_bounded(text: str) -> None:
    try:
        _, positions = load_yaml(text, "fuzz.yaml")
    except RouteError as exc:
        assert all("\n" not in str(p) for p in exc.problems)
    else:
        # one position per node and one per mapping key: bounded by the node limit
        assert len(positions) <= 2 * MAX_ROUTE_NODES
    try:
        Route.from_text(text, "fuzz.yaml")
    except RouteError as exc:
        assert exc.problems
        assert all("\n" not in str(p) for p in exc.problems)


# -- atheris (coverage-guided), when it installs ------------------------------------------------

ATHERIS = Path(__file__).resolve().parents[1] / "fuzz" / "atheris_targets.py"


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed here")
@pytest.mark.parametrize("target", ["condition", "route", "csv", "jsonl"])
def test_atheris_finds_no_crash(target: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ATHERIS), target, "-runs=4000", "-max_len=4096", "-seed=7"],
                          cwd=tmp_path, env={**os.environ, "WS_FUZZ_DIR": str(tmp_path)},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Done 4000 runs" in done.stderr
