"""``waystation breaker status|reset``: look at and close shared circuit breakers.

Only breakers kept in Redis (``breaker: {shared: redis}``) can be seen or reset from outside the
process that runs them; an in-process breaker lives and dies with its process. Redis is found at
``--redis-url`` or ``WAYSTATION_REDIS_URL``, keys under ``--prefix`` or ``WAYSTATION_REDIS_PREFIX``
(default ``waystation``) — the same settings the engine uses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from waystation.cli import output
from waystation.cli.errors import UsageProblem, service
from waystation.cli.options import format_option, redis_url_option

if TYPE_CHECKING:
    from waystation.resilience.redis_shared import RedisBreakerBackend

T = TypeVar("T")

_url_option = redis_url_option(
    help="Redis holding the shared breakers",
    why="shared breakers live in Redis; a breaker that is not `shared: redis` lives only inside its own process")
_prefix_option = click.option(
    "--prefix", envvar="WAYSTATION_REDIS_PREFIX", show_envvar=True, default="waystation", show_default=True,
    help="Key prefix the workers use.")


def _with_backend(redis_url: str, prefix: str,
                  body: Callable[[RedisBreakerBackend], Awaitable[T]]) -> T:
    async def run() -> T:
        from waystation.resilience.redis_shared import RedisBreakerBackend, SharedRedis

        shared = SharedRedis(redis_url, prefix)
        try:
            return await body(RedisBreakerBackend(shared))
        finally:
            await shared.aclose()

    with service("Redis", redis_url):
        return asyncio.run(run())


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "-"
    delta = ts - now
    return f"in {delta:.0f}s" if delta >= 0 else f"{-delta:.0f}s ago"


@click.group("breaker")
def breaker() -> None:
    """Shared circuit breakers (kept in Redis): show them, close one by hand."""


@breaker.command("status")
@click.argument("stations", nargs=-1)
@_url_option
@_prefix_option
@format_option
def status(stations: tuple[str, ...], redis_url: str, prefix: str, fmt: str | None, as_json: bool) -> None:
    """Show the shared breakers of STATIONS (default: every station with stored state).

    A breaker with no stored state is closed.
    """

    async def body(backend: RedisBreakerBackend) -> list[dict[str, Any]]:
        names = list(stations) or await backend.names()
        rows = []
        for name in names:
            st = await backend.status(name)
            rows.append({"station": st.station, "state": st.state, "cause": st.cause, "failures": st.failures,
                         "opened_at": st.opened_at, "probe_after": st.until, "probes": st.probes})
        return rows

    rows = _with_backend(redis_url, prefix, body)
    now = time.time()
    table = [{**r, "cause": r["cause"] or "-",
              "opened": _ago(r["opened_at"], now) if r["state"] != "closed" else "-",
              "probe": _ago(r["probe_after"], now)} for r in rows]
    output.emit(table, BREAKER_COLUMNS, output.resolve_format(fmt, as_json), title=f"shared breakers ({prefix})",
                json_rows=rows, empty="no shared breaker has state: all closed")


BREAKER_COLUMNS = [
    output.Column("station", "station", priority=100, name=True),
    output.Column("state", "state", priority=90),
    output.Column("cause", "cause", priority=50),
    output.Column("failures", "failures", priority=40, justify="right"),
    output.Column("opened", "opened", priority=30),
    output.Column("probe", "probe", priority=20),
]


@breaker.command("reset")
@click.argument("station")
@_url_option
@_prefix_option
@click.pass_context
def reset(ctx: click.Context, station: str, redis_url: str, prefix: str) -> None:
    """Close the shared breaker of STATION for every worker (e.g. after buying more credits for an
    ``exhausted`` vendor).

    STATION must be an installed station or have a shared breaker in Redis: a misspelt name is an
    error (exit 2), not a silent "closed"."""
    from waystation.cli.context import get_host

    host = get_host(ctx)

    async def body(backend: RedisBreakerBackend) -> str | None:
        if station not in host.stations and station not in await backend.names():
            return None
        before = await backend.status(station)
        await backend.reset(station)
        return before.state + (f" ({before.cause})" if before.cause else "")

    was = _with_backend(redis_url, prefix, body)
    if was is None:
        found = host.suggestion(station)
        raise UsageProblem(f"no station {station!r} is installed and no shared breaker has state for it",
                           found.hint(station) if found else "`waystation breaker status` lists the breakers "
                           "with state; `waystation stations` the installed stations")
    click.echo(f"breaker of {station} closed (was {was})")
