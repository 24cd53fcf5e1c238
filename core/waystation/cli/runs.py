"""``waystation runs``: the runs a checkpoint store holds; ``runs prune`` / ``runs delete`` reclaim it.

Read-only commands never create a store: a ``sqlite:///`` file that does not exist is an error
(naming the path), not a new empty database.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import click

from waystation.cli import options, output
from waystation.cli.errors import UsageProblem, service
from waystation.cli.options import checkpoint_option, format_option
from waystation.stores import DEFAULT_SQLITE_URL

if TYPE_CHECKING:
    from waystation.stores import CheckpointStore

T = TypeVar("T")

_CHECKPOINT_HELP = "The checkpoint store the runs were saved in (sqlite:///path or redis://…)."
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``2w``, ``45s`` in seconds; ``ValueError`` otherwise."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (write e.g. 30d, 12h, 90m, 2w)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def with_store(url: str, body: Callable[[CheckpointStore], Awaitable[T]]) -> T:
    """Open an *existing* store, run ``body`` with it and close it; errors become one-liners."""
    from waystation.stores import open_store

    options.require_existing_sqlite(url, "checkpoint store")

    async def go() -> T:
        store = open_store(url)
        try:
            return await body(store)
        finally:
            await store.close()

    scheme = urlsplit(url).scheme.lower()
    kind = "Redis" if scheme.startswith("redis") or scheme == "unix" else "the checkpoint store"
    with service(kind, url):
        return asyncio.run(go())


def _when(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def run_summary(meta: dict[str, Any]) -> dict[str, Any]:
    """One run as data: id, route, input, started, status, counts, cost."""
    leads = meta.get("leads") or {}
    report = meta.get("report") or {}
    cost = report.get("total_cost")
    return {
        "run_id": meta.get("run_id"), "route": meta.get("route_name"), "input": meta.get("input"),
        "started": meta.get("started_at") or meta.get("created_at"), "updated": meta.get("updated_at"),
        "status": meta.get("status"), "written": meta.get("written", 0),
        "counts": {k: v for k, v in leads.items() if v}, "cost": cost,
    }


RUN_COLUMNS = [
    output.Column("run_id", "run id", priority=100, name=True),
    output.Column("route", "route", priority=80, name=True),
    output.Column("started", "started (UTC)", priority=60),
    output.Column("status", "status", priority=90),
    output.Column("counts", "leads", priority=50),
    output.Column("cost", "cost", priority=70, justify="right"),
    output.Column("input", "input", priority=20),
]


@click.group("runs", invoke_without_command=True)
@checkpoint_option(default=DEFAULT_SQLITE_URL, help=_CHECKPOINT_HELP)
@format_option
@click.option("--history", "from_history", is_flag=True,
              help="List the run history instead (every run and worker run recorded, with its cost; "
                   "see `waystation history`).")
@click.option("--history-url", default=None, envvar="WAYSTATION_HISTORY",
              help="The run history store (default: the checkpoint SQLite file; also WAYSTATION_HISTORY).")
@click.pass_context
def runs(ctx: click.Context, checkpoint: str, fmt: str | None, as_json: bool, from_history: bool,
         history_url: str | None) -> None:
    """List past runs (id, route, input, started, status, lead counts, cost).

    \b
    waystation runs                              every run in the store
    waystation runs --history                    every run recorded in the run history
    waystation runs prune --older-than 30d       delete runs last updated 30 days ago or more
    waystation runs delete RUN_ID                delete one run
    """
    ctx.obj = {**(ctx.obj or {}), "checkpoint": checkpoint}
    if ctx.invoked_subcommand is not None:
        return
    if from_history:
        from waystation.cli.cost import emit_history

        emit_history(history_url, checkpoint, None, None, output.resolve_format(fmt, as_json))
        return

    async def body(store: CheckpointStore) -> list[dict[str, Any]]:
        return [run_summary(m) for m in await store.list_runs()]

    rows = with_store(checkpoint, body)
    fmt = output.resolve_format(fmt, as_json)
    table = [{**r, "started": _when(r["started"]),
              "counts": ", ".join(f"{k} {v:,}" for k, v in r["counts"].items()) or f"{r['written']:,} rows",
              "cost": "-" if r["cost"] is None else f"${r['cost']:.4f}"} for r in rows]
    output.emit(table, RUN_COLUMNS, fmt, title="runs", json_rows=rows, empty="no runs in this checkpoint store")


def _checkpoint(ctx: click.Context, given: str | None) -> str:
    return given or (ctx.obj or {}).get("checkpoint") or DEFAULT_SQLITE_URL


@runs.command("delete")
@click.argument("run_ids", metavar="RUN_ID...", nargs=-1, required=True)
@checkpoint_option(default=None, help=_CHECKPOINT_HELP)
@click.pass_context
def delete(ctx: click.Context, run_ids: tuple[str, ...], checkpoint: str | None) -> None:
    """Delete runs: their metadata and every saved lead state (paid results included)."""
    url = _checkpoint(ctx, checkpoint)

    async def body(store: CheckpointStore) -> list[str]:
        missing = [r for r in run_ids if await store.load_run(r) is None]
        if missing:
            return missing
        for r in run_ids:
            await store.delete_run(r)
        await _reclaim(store)
        return []

    missing = with_store(url, body)
    if missing:
        raise UsageProblem(f"no run {', '.join(repr(m) for m in missing)} in this checkpoint store; nothing deleted",
                           "`waystation runs` lists the runs it holds")
    click.echo(f"deleted {len(run_ids)} run(s): {', '.join(run_ids)}")


@runs.command("prune")
@click.option("--older-than", "older_than", required=True, metavar="AGE",
              help="Delete runs last updated at least AGE ago: 30d, 12h, 90m, 2w.")
@click.option("--status", "statuses", multiple=True,
              help="Only runs with this status (complete, interrupted, failed, running); repeatable.")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
@checkpoint_option(default=None, help=_CHECKPOINT_HELP)
@click.pass_context
def prune(ctx: click.Context, older_than: str, statuses: tuple[str, ...], dry_run: bool,
          checkpoint: str | None) -> None:
    """Delete old runs and reclaim the store's space."""
    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    url = _checkpoint(ctx, checkpoint)
    cutoff = time.time() - age

    async def body(store: CheckpointStore) -> list[str]:
        old = [m["run_id"] for m in await store.list_runs()
               if float(m.get("updated_at") or m.get("created_at") or 0) <= cutoff
               and (not statuses or m.get("status") in statuses)]
        if not dry_run:
            for r in old:
                await store.delete_run(r)
            if old:
                await _reclaim(store)
        return old

    old = with_store(url, body)
    verb = "would delete" if dry_run else "deleted"
    listed = f": {', '.join(old)}" if old else ""
    click.echo(f"{verb} {len(old)} run(s) last updated {older_than} ago or more{listed}")


async def _reclaim(store: CheckpointStore) -> None:
    vacuum = getattr(store, "vacuum", None)
    if vacuum is not None:
        await vacuum()
