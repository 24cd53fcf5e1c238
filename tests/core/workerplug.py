"""Stations for the worker tests (loaded with ``WAYSTATION_EXTRA_PLUGINS=fakevendor,workerplug``).

``Trap``: free; while the file named by its ``armed`` setting exists, a lead named ``poison``
raises an exception the engine does not contain (as a bug outside any station would) and a lead
named ``killer`` kills its worker process (SIGKILL). Every other lead, or any lead once the file
is gone, passes with ``trap: ok``.
"""

from __future__ import annotations

import os
import signal
from typing import Any, ClassVar

from waystation import Outcome, Station, StationSettings, StepContext, hookimpl

WAYSTATION_API = ">=1,<2"


class Boom(BaseException):
    """Not an ``Exception``: the engine lets it through, so the whole lead raises."""


class TrapSettings(StationSettings):
    """The file whose existence arms the trap."""

    armed: str = ""


class Trap(Station):
    """Raises for ``poison`` and kills the process for ``killer`` while armed."""

    name = "Trap"
    provides: ClassVar[dict[str, Any]] = {"trap": str}
    Settings = TrapSettings

    async def process(self, ctx: StepContext) -> Outcome:
        assert isinstance(self.settings, TrapSettings)
        armed = bool(self.settings.armed) and os.path.exists(self.settings.armed)  # noqa: ASYNC240 - a test
        who = str(ctx.data.get("name", ""))
        if armed and who == "poison":
            raise Boom("poison lead: always raises")
        if armed and who == "killer":
            os.kill(os.getpid(), signal.SIGKILL)
        return Outcome({"trap": "ok"})


@hookimpl
def register_stations() -> list[type[Station]]:
    """The trap."""
    return [Trap]
