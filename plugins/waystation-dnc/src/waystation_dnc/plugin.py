"""The waystation plugin of waystation-dnc: its station, its stop decision, its CLI commands.

Light imports only: the store and file parsing are imported when a command or station runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from waystation import Outcome, Station, Stop, hookimpl

from waystation_dnc.api import DncApiStation
from waystation_dnc.blacklist import BlacklistAllianceStation
from waystation_dnc.dncscrub import DNCScrubApiStation
from waystation_dnc.realvalidation import RealValidationDNCStation
from waystation_dnc.rnd import ReassignedNumbersStation
from waystation_dnc.stations import DNCScrubStation, stop_decision
from waystation_dnc.verdict import DialEligibilityStation, verdict_stop

if TYPE_CHECKING:
    import click

WAYSTATION_API = ">=1,<2"


@hookimpl
def register_stations() -> Iterable[type[Station]]:
    """The DNCScrubStation (local store), the paid APIs (RealValidation, Blacklist Alliance,
    DNCScrub), the ReassignedNumbersStation (FCC RND) and the DialEligibilityStation (the verdict)."""
    return [DNCScrubStation, RealValidationDNCStation, BlacklistAllianceStation, DNCScrubApiStation,
            ReassignedNumbersStation, DialEligibilityStation]


@hookimpl
def decide_stop(step: Any, outcome: Outcome) -> tuple[Stop, str] | None:
    """Stop the route when a DNC station's step found the number listed, as its ``on_listed``
    setting says: ``skip_remaining`` (default: nothing more is spent on a number that may not be
    called), ``fail``, or ``continue`` (no opinion); and after a dial verdict of ``no`` /
    ``unknown`` as the verdict step's ``on_ineligible`` / ``on_unknown`` say."""
    station = getattr(step, "station", None)
    if isinstance(station, type) and issubclass(station, DialEligibilityStation):
        decision = verdict_stop(step.settings, dict(outcome.fields))
        return None if decision is None else (Stop(decision[0]), decision[1])
    if not (isinstance(station, type)
            and issubclass(station, DNCScrubStation | RealValidationDNCStation | DncApiStation)):
        return None
    decision = stop_decision(step.settings, dict(outcome.fields))
    if decision is None:
        return None
    return Stop(decision[0]), decision[1]


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``waystation dnc import`` and ``waystation dnc status``."""
    from waystation_dnc.cli import dnc

    cli.add_command(dnc)


@hookimpl
def forget_person(request: Any) -> Any:
    """With ``--dnc-internal``: take the person's phone numbers off the internal do-not-call list of
    each DNC store the route uses (federal and litigator entries stay: they are not theirs to drop)."""
    if not request.dnc_internal or not request.phones:
        return None
    from waystation_dnc.forget import forget_internal

    return forget_internal(request)
