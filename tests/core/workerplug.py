"""Stations for the worker tests (loaded with ``WAYSTATION_EXTRA_PLUGINS=fakevendor,workerplug``).

``Trap``: free; while the file named by its ``armed`` setting exists, a lead named ``poison``
raises an exception the engine does not contain (as a bug outside any station would) and a lead
named ``killer`` kills its worker process (SIGKILL). Every other lead, or any lead once the file
is gone, passes with ``trap: ok``.

``WireGate`` (a gate, free): while the file named by ``down`` exists it fails as a vendor down for
good (``ServerError``); it appends the lead id to ``calls`` (a file) on every call. ``KeyedGate``
(a gate) needs ``api_key`` (``WSTEST_KEYEDGATE_API_KEY``) and its ``data_file``
(``WSTEST_KEYEDGATE_DATA_FILE``) to exist (its preflight). ``Ledger`` is the save downstream of
the gates: it appends the lead id to the file ``path``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, ClassVar

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict
from waystation import Outcome, RetryPolicy, ServerError, Station, StationSettings, StepContext, hookimpl

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


def _append(path: str, line: str) -> None:
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


class WireSettings(StationSettings):
    """``down``: while this file exists the gate's vendor is down; ``calls``: the call log file."""

    down: str = ""
    calls: str = ""


class WireGate(Station):
    """A gate whose vendor is down while ``down`` exists (see the module docstring)."""

    name = "WireGate"
    gate = True
    provides: ClassVar[dict[str, Any]] = {"wire": str}
    Settings = WireSettings
    retry = RetryPolicy(max_attempts=1)

    async def process(self, ctx: StepContext) -> Outcome:
        assert isinstance(self.settings, WireSettings)
        _append(self.settings.calls, ctx.lead_id)
        if self.settings.down and os.path.exists(self.settings.down):  # noqa: ASYNC240 - a test
            raise ServerError("HTTP 503 from the gate's vendor")
        return Outcome({"wire": "clear"})


class KeyedSettings(StationSettings):
    """A key and a data file, from ``WSTEST_KEYEDGATE_*``."""

    model_config = SettingsConfigDict(env_prefix="WSTEST_KEYEDGATE_", extra="forbid", frozen=True)
    api_key: SecretStr | None = None
    data_file: str = ""
    calls: str = ""


class KeyedGate(Station):
    """A gate that needs its key and its data file on the host that runs it."""

    name = "KeyedGate"
    gate = True
    provides: ClassVar[dict[str, Any]] = {"keyed": str}
    Settings = KeyedSettings
    required_settings: ClassVar[tuple[str, ...]] = ("api_key",)

    def preflight(self) -> list[str]:
        assert isinstance(self.settings, KeyedSettings)
        path = self.settings.data_file
        if not path or not Path(path).is_file():
            return [f"data file {path or '(none)'} does not exist: set WSTEST_KEYEDGATE_DATA_FILE"]
        return []

    async def process(self, ctx: StepContext) -> Outcome:
        assert isinstance(self.settings, KeyedSettings)
        _append(self.settings.calls, ctx.lead_id)
        return Outcome({"keyed": "clear"})


class LedgerSettings(StationSettings):
    """The file the saved lead ids are appended to."""

    path: str = ""


class Ledger(Station):
    """The save downstream of the gates: appends the lead id to ``path``."""

    name = "Ledger"
    provides: ClassVar[dict[str, Any]] = {"saved": str}
    Settings = LedgerSettings

    async def process(self, ctx: StepContext) -> Outcome:
        assert isinstance(self.settings, LedgerSettings)
        _append(self.settings.path, ctx.lead_id)
        return Outcome({"saved": "yes"})


@hookimpl
def register_stations() -> list[type[Station]]:
    """The trap, the gates and the ledger."""
    return [Trap, WireGate, KeyedGate, Ledger]
