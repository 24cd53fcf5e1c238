"""Toy stations for the core's tests (no plugin installed)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from pydantic import SecretStr
from waystation import Outcome, Station, StationSettings, StepContext, Stop


class Recorder:
    """Collects what the toy stations saw, per test."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.seen: dict[str, dict[str, Any]] = {}
        self.running = 0
        self.max_running = 0


REC = Recorder()


def reset() -> Recorder:
    """A fresh recorder."""
    global REC
    REC = Recorder()
    return REC


def make(name: str, provides: dict[str, Any] | None = None, *, requires: tuple[str, ...] = (),
         optional: tuple[str, ...] = (), cost: float = 0.0, value: dict[str, Any] | None = None,
         sleep: float = 0.0, stop: Stop = Stop.CONTINUE, reason: str | None = None,
         actual_cost: float | None = None, raises: BaseException | None = None,
         settings: type[StationSettings] = StationSettings, **attrs: Any) -> type[Station]:
    """Build a toy station class that returns ``value`` (default: each provided field = name)."""
    provides = provides if provides is not None else {name.lower(): str}
    out = value if value is not None else {k: f"{name}:{k}" if t is str else 1 for k, t in provides.items()}

    async def process(self: Station, ctx: StepContext) -> Outcome:
        rec = REC
        rec.calls.append(ctx.step_id)
        rec.seen[ctx.step_id] = dict(ctx.data)
        rec.running += 1
        rec.max_running = max(rec.max_running, rec.running)
        try:
            if sleep:
                await asyncio.sleep(sleep)
            if raises is not None:
                raise raises
            return Outcome(out, cost=cost if actual_cost is None else actual_cost, stop=stop, reason=reason)
        finally:
            rec.running -= 1

    ns: dict[str, Any] = {
        "name": name, "provides": provides, "requires": requires, "optional": optional, "cost": cost,
        "process": process, "Settings": settings, "__doc__": f"Toy station {name}.", **attrs,
    }
    return type(name, (Station,), ns)


class Keyed(StationSettings):
    """Settings with a secret and a threshold."""

    api_key: SecretStr | None = None
    threshold: int = 3


class SecretStation(Station):
    """Raises an error that contains its API key."""

    name = "SecretStation"
    provides: ClassVar[dict[str, Any]] = {"x": str}
    Settings = Keyed

    async def process(self, ctx: StepContext) -> Outcome:
        key = self.settings.api_key.get_secret_value()  # type: ignore[attr-defined]
        raise RuntimeError(f"GET https://vendor.test/lookup?key={key} failed")
