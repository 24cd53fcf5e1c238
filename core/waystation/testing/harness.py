"""Helpers to run one station, or a route, in a test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import stamina
import yaml

from waystation.engine import Engine
from waystation.result import LeadResult, StepRecord
from waystation.station import Outcome, Station


@contextlib.contextmanager
def fast_retries(attempts: int = 100) -> Iterator[None]:
    """Switch retry waits off (the attempts and their logic stay as configured)."""
    with stamina.set_testing(True, attempts=attempts, cap=True):
        yield


@dataclass
class StationRun:
    """What :func:`run_station` returns: the lead result, the step's record and its outcome."""

    result: LeadResult
    record: StepRecord
    outcome: Outcome | None

    @property
    def fields(self) -> dict[str, Any]:
        """The fields the step added (after validation)."""
        return dict(self.outcome.fields) if self.outcome else {}


class _Capture:
    def __init__(self) -> None:
        self.outcome: Outcome | None = None

    from waystation.hooks import hookimpl as _hookimpl

    @_hookimpl
    def after_step(self, outcome: Outcome) -> None:
        self.outcome = outcome


async def run_station(
    station: type[Station],
    lead: Mapping[str, Any],
    *,
    settings: Mapping[str, Any] | None = None,
    step: Mapping[str, Any] | None = None,
    budget: float | None = None,
    plugins: Iterable[object] = (),
) -> StationRun:
    """Run ``station`` alone on ``lead`` through the real engine (validation, budget, retries,
    hooks) and return its :class:`StationRun`. ``step`` adds step keys (``retry:``, ``timeout:``)."""
    spec: dict[str, Any] = {"station": station.name, "settings": dict(settings or {}), **dict(step or {})}
    route: dict[str, Any] = {"name": f"test-{station.name}", "steps": [spec],
                             "input": sorted(set(lead) | set(station.requires))}
    if budget is not None:
        route["budget"] = budget
    capture = _Capture()
    engine = Engine.from_text(yaml.safe_dump(route), [station], plugins=[capture, *plugins])
    async with engine:
        result = await engine.run(dict(lead))
    return StationRun(result, result.steps[spec.get("id") or station.name], capture.outcome)


async def run_route(
    route_yaml: str,
    leads: Iterable[Mapping[str, Any]],
    stations: Iterable[type[Station]],
    *,
    plugins: Iterable[object] = (),
    **engine_kwargs: Any,
) -> list[LeadResult]:
    """Compile ``route_yaml`` with exactly ``stations`` and run every lead through it."""
    engine = Engine.from_text(route_yaml, list(stations), plugins=plugins, **engine_kwargs)
    async with engine:
        return [await engine.run(dict(lead)) for lead in leads]
