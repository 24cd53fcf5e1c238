"""``waystation breaker status|reset``: look at and close shared circuit breakers.

Only breakers kept in Redis (``breaker: {shared: redis}``) can be seen or reset from outside the
process that runs them; an in-process breaker lives and dies with its process. Redis is found at
``--redis-url`` or ``WAYSTATION_REDIS_URL``, keys under ``--prefix`` or ``WAYSTATION_REDIS_PREFIX``
(default ``waystation``) — the same settings the engine uses.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from waystation.resilience.redis_shared import RedisBreakerBackend

T = TypeVar("T")

_url_option = click.option(
    "--redis-url", envvar="WAYSTATION_REDIS_URL", show_envvar=True, default=None,
    help="Redis holding the shared breakers (its password, if any, is never printed).")
_prefix_option = click.option(
    "--prefix", envvar="WAYSTATION_REDIS_PREFIX", show_envvar=True, default="waystation", show_default=True,
    help="Key prefix the workers use.")


def _with_backend(redis_url: str | None, prefix: str,
                  body: Callable[[RedisBreakerBackend], Awaitable[T]]) -> T:
    from waystation.resilience.redis_shared import RedisBreakerBackend, SharedRedis

    if not redis_url:
        raise click.UsageError(
            "shared breakers live in Redis: pass --redis-url or set WAYSTATION_REDIS_URL (a breaker "
            "that is not `shared: redis` lives only inside its own process)")

    async def run() -> T:
        shared = SharedRedis(redis_url, prefix)
        try:
            return await body(RedisBreakerBackend(shared))
        finally:
            await shared.aclose()

    try:
        return asyncio.run(run())
    except OSError as exc:
        raise click.ClickException(f"cannot reach Redis: {type(exc).__name__}") from None
    except Exception as exc:
        if type(exc).__module__.startswith("redis"):
            raise click.ClickException(f"Redis: {type(exc).__name__} (is it running at the URL given?)") from None
        raise


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
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(stations: tuple[str, ...], redis_url: str | None, prefix: str, as_json: bool) -> None:
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
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no shared breaker has state: all closed")
        return
    from rich.console import Console
    from rich.table import Table

    now = time.time()
    table = Table(title=f"shared breakers ({prefix})")
    for col in ("station", "state", "cause", "failures", "opened", "probe"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["station"], r["state"], r["cause"] or "-", str(r["failures"]),
                      _ago(r["opened_at"], now) if r["state"] != "closed" else "-",
                      _ago(r["probe_after"], now))
    Console(highlight=False).print(table)


@breaker.command("reset")
@click.argument("station")
@_url_option
@_prefix_option
def reset(station: str, redis_url: str | None, prefix: str) -> None:
    """Close the shared breaker of STATION for every worker (e.g. after buying more credits for an
    ``exhausted`` vendor)."""

    async def body(backend: RedisBreakerBackend) -> str:
        before = await backend.status(station)
        await backend.reset(station)
        return before.state + (f" ({before.cause})" if before.cause else "")

    was = _with_backend(redis_url, prefix, body)
    click.echo(f"breaker of {station} closed (was {was})")
