"""Hostile routes: each is refused with one exact, one-line error naming the limit or the problem.

The small ones are files in ``routes/``; the big ones (a 10,000-step chain, 20,000-deep nesting,
a 100,000-character condition...) are generated here, so the repository stays small. Each is
loaded under ``tracemalloc`` and its peak memory is asserted (a bound that is not wall-clock).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from waystation import Outcome, PluginHost, Route, RouteError, Station, StepContext, compile_route
from waystation.limits import MAX_CONDITION_LENGTH, MAX_REPORTED_ERRORS

HERE = Path(__file__).parent / "routes"


class Echo(Station):
    """Provides x (a toy for hostile routes)."""

    name = "Echo"
    provides: ClassVar[dict[str, Any]] = {"x": str}

    async def process(self, ctx: StepContext) -> Outcome:
        return Outcome({"x": "x"})


def host() -> PluginHost:
    h = PluginHost()
    h.add_stations([Echo])
    return h


def chain(n: int) -> str:
    return "name: chain\nsteps:\n" + "".join(
        f"  - {{station: Echo, id: s{i}{', after: s' + str(i - 1) if i else ''}}}\n" for i in range(n))


def parallel(n: int) -> str:
    return "name: parallel\nsteps:\n" + "".join(f"  - {{station: Echo, id: s{i}}}\n" for i in range(n))


def condition(text: str) -> str:
    return f"name: cond\nsteps:\n  - station: Echo\n    condition: '{text}'\n"


GENERATED: dict[str, Callable[[], str]] = {
    "chain-10k": lambda: chain(10_000),
    "parallel-3k": lambda: parallel(3_000),
    "deep-flow-20k": lambda: "name: deep\nsteps: " + "[" * 20_000 + "]" * 20_000 + "\n",
    "deep-block-60": lambda: "name: deep\nsteps:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(60)),
    "huge-file": lambda: "name: big\nsteps: [{station: Echo}]\ndescription: '" + "x" * (2 << 20) + "'\n",
    "condition-100k-not": lambda: condition("not " * 25_000 + "x exists"),
    "condition-100k-parens": lambda: condition("(" * 50_000 + "x exists" + ")" * 50_000),
    "condition-deep-not": lambda: condition("not " * 40 + "x exists"),
    "condition-deep-parens": lambda: condition("(" * 40 + "x exists" + ")" * 40),
    "condition-huge-number": lambda: condition("x > " + "9" * 4_000),
    "condition-long-number": lambda: condition("x > " + "9" * 100),
}

EXPECTED: dict[str, str] = {
    "billion-laughs.yaml": "billion-laughs.yaml:2:36: the route expands to more than 20,000 YAML nodes "
                           "(limit; aliases count once per use)",
    "python-tag.yaml": "python-tag.yaml:3:14: invalid YAML: tag 'tag:yaml.org,2002:python/object/apply:os.system' "
                       "is not allowed",
    "complex-key.yaml": "complex-key.yaml:1:3: invalid YAML: mapping keys must be plain values",
    "condition-attribute.yaml": "condition-attribute.yaml:4:70: malformed condition: unexpected character '.' "
                                "(column 55 of \"__class__.__mro__ exists and phone == "
                                "__import__('os').system('id')\")",
    "bad-step-id.yaml": "bad-step-id.yaml:4:9: step id 'x\", station=\"evil' must be identifier-like (letters, "
                        "digits, '_', '-', '.'; at most 63 characters): it names metrics and output",
    "chain-10k": "chain-10k:259:5: the route has more than 256 steps (limit)",
    "parallel-3k": "parallel-3k:259:5: the route has more than 256 steps (limit)",
    "deep-flow-20k": "deep-flow-20k:2:47: the route nests mappings and lists more than 40 deep (limit)",
    "deep-block-60": "deep-block-60:42:81: the route nests mappings and lists more than 40 deep (limit)",
    "huge-file": "huge-file: the route is larger than 1,048,576 bytes (limit)",
    "condition-100k-not": f"condition-100k-not:4:16: malformed condition: the condition is 100,008 characters, "
                          f"longer than the limit of {MAX_CONDITION_LENGTH:,} (column 1 of "
                          f"'{'not ' * 50}...')",
    "condition-100k-parens": "condition-100k-parens:4:16: malformed condition: the condition is 100,008 "
                             "characters, longer than the limit of 4,096 (column 1 of "
                             f"'{'(' * 200}...')",
    "condition-deep-not": "condition-deep-not:4:148: malformed condition: the condition nests 'not' and "
                          "parentheses more than 32 deep (limit) (column 133 of "
                          f"'{'not ' * 40}x exists')",
    "condition-deep-parens": "condition-deep-parens:4:49: malformed condition: the condition nests 'not' and "
                             "parentheses more than 32 deep (limit) (column 34 of "
                             f"'{'(' * 40}x exists{')' * 40}')",
    "condition-huge-number": "condition-huge-number:4:20: malformed condition: a number of 4,000 characters is "
                             "longer than the limit of 40 (column 5 of "
                             f"'x > {'9' * 196}...')",
    "condition-long-number": "condition-long-number:4:20: malformed condition: a number of 100 characters is "
                             "longer than the limit of 40 (column 5 of "
                             f"'x > {'9' * 100}')",
}


def refuse(text: str, name: str) -> list[str]:
    tracemalloc.start()
    try:
        with pytest.raises(RouteError) as info:
            compile_route(Route.from_text(text, name), host())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # bounded work: the biggest input is 2 MiB of text; nothing may blow up beyond a few copies of it
    assert peak < 40 * 2**20, f"{name}: peak {peak / 2**20:.1f} MiB"
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("name", sorted(p.name for p in HERE.glob("*.yaml")))
def test_hostile_route_files(name: str) -> None:
    lines = refuse((HERE / name).read_text(), name)
    assert lines == [EXPECTED[name]]


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_hostile_routes(name: str) -> None:
    lines = refuse(GENERATED[name](), name)
    assert lines == [EXPECTED[name]]
    assert "\n" not in lines[0] and "Traceback" not in lines[0]


def test_from_file_reads_no_more_than_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:  # 64 MiB, sparse: a loader reading it whole would take 64 MiB
        f.truncate(64 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(RouteError) as info:
            Route.from_file(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(info.value) == f"{big}: the route is larger than 1,048,576 bytes (limit)"
    assert peak < 4 * 2**20


def test_conflict_errors_are_capped() -> None:
    """255 parallel steps all providing x: 32,385 conflicts, 50 reported and the rest counted."""
    with pytest.raises(RouteError) as info:
        compile_route(Route.from_text(parallel(255), "p"), host())
    lines = [str(p) for p in info.value.problems]
    assert len(lines) == MAX_REPORTED_ERRORS + 1
    assert lines[0] == ("p:4:15: steps 's0' and 's1' can run in parallel and both provide x; make one a fallback "
                        "of the other or order them with 'after:'")
    assert lines[-1] == f"p: ... and {255 * 254 // 2 - MAX_REPORTED_ERRORS:,} more error(s) (only the first 50 " \
                        "are reported)"


class BadProvides(Station):
    """Declares a field that would collide with a PostgreSQL system column and one that is not a name."""

    name = "BadProvides"
    provides: ClassVar[dict[str, Any]] = {"xmin": str, "a b": str}


def test_station_field_names_are_validated() -> None:
    h = host()
    h.add_stations([BadProvides])
    with pytest.raises(RouteError) as info:
        compile_route(Route.from_text("name: n\nsteps: [{station: BadProvides}]\n", "r"), h)
    assert [str(p) for p in info.value.problems] == [
        "r:2:19: station BadProvides provides a bad field: field name 'xmin' is reserved",
        "r:2:19: station BadProvides provides a bad field: field name 'a b' is not identifier-like (a letter or "
        "'_', then letters, digits, '_' or '-')",
    ]
