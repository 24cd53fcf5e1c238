"""Cost commands: ``waystation estimate``, ``waystation history`` and ``waystation cache``.

Kept light at import time: the machinery is imported when a command runs.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from waystation.stores import DEFAULT_SQLITE_URL

if TYPE_CHECKING:
    from rich.console import Console

    from waystation.history import RunHistory

_CHECKPOINT = click.option("--checkpoint", default=DEFAULT_SQLITE_URL, show_default=True,
                           envvar="WAYSTATION_CHECKPOINT",
                           help="The checkpoint store; history and cache live beside it by default.")
_HISTORY = click.option("--history", "history_url", default=None, envvar="WAYSTATION_HISTORY",
                        help="Run history store: sqlite:///path or postgresql+psycopg://... "
                             "(default: the checkpoint SQLite file; also WAYSTATION_HISTORY).")


def _consoles() -> tuple[Console, Console]:
    from waystation.cli.context import console, err_console

    return console, err_console


def _money(v: float | None) -> str:
    return "-" if v is None else f"${v:,.4f}"


# ============================================================================ estimate


@click.command("estimate")
@click.argument("route", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("input_file", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--sample", "sample_size", type=click.IntRange(min=1), default=200, show_default=True,
              help="Leads sampled from INPUT (seeded, streamed).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
@click.option("--format", "input_format", type=click.Choice(["csv", "jsonl"]), help="Input format.")
@click.option("--json", "as_json", is_flag=True, help="Print the forecast as JSON.")
@click.option("--no-save", is_flag=True, help="Do not keep the forecast for `waystation report`.")
@_CHECKPOINT
@_HISTORY
@click.pass_context
def estimate_command(ctx: click.Context, route: Path, input_file: Path, sample_size: int, seed: int,
                     input_format: str | None, as_json: bool, no_save: bool, checkpoint: str,
                     history_url: str | None) -> None:
    """Forecast what running INPUT through ROUTE will cost, before anything is spent.

    \b
    Free stations and conditions run for real on a seeded sample of INPUT; paid stations
    are never called: their hit probability comes from the run history (this route, then
    any route), else the station's declared prior, else the worst case ("no history").
    Prints per step: probability it runs, expected calls, cost, hits, cost per hit; and
    the file's expected total with a ~95 % range, the --budget-total it would need and
    the steps that dominate. See docs/cost.md for the model.
    """
    from waystation.batch import BatchConfig, BatchError, compile_for_input
    from waystation.cli.context import get_host
    from waystation.errors import RouteError
    from waystation.history import default_history_url, open_history
    from waystation.history.estimate import forecast, input_key, sample_file

    console, err_console = _consoles()
    host = get_host(ctx)
    cfg = BatchConfig(route=route, input=input_file, input_format=input_format)
    try:
        _, plan, fmt, _ = compile_for_input(cfg, host)
    except RouteError as exc:
        for p in exc.problems:
            err_console.print(f"[red]error[/red] {p}", highlight=False)
        ctx.exit(2)
        return
    except (BatchError, OSError, ValueError) as exc:
        err_console.print(f"[red]error[/red] {exc}", highlight=False)
        ctx.exit(2)
        return
    url = history_url or default_history_url(checkpoint) or DEFAULT_SQLITE_URL
    where, key = str(input_file.resolve()), input_key(input_file)

    async def go() -> dict[str, Any]:
        sample, leads, rejected = await asyncio.to_thread(sample_file, input_file, fmt, sample_size, seed)
        history = open_history(url)
        try:
            doc = await forecast(plan, sample, leads, history, extra={
                "input": where, "rejected": rejected, "seed": seed})
            if not no_save:
                await history.save_estimate(plan.name, key, doc, time.time())
            return doc
        finally:
            await history.close()

    try:
        doc = asyncio.run(go())
    except (OSError, ValueError) as exc:
        err_console.print(f"[red]error[/red] {exc}", highlight=False)
        ctx.exit(2)
        return
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    render_estimate(doc, console)


def render_estimate(doc: dict[str, Any], console: Console) -> None:
    """Print a forecast as a table and a summary."""
    from rich.table import Table

    table = Table(title=f"estimate — route {doc['route']}, {doc['leads']:,} leads (sample {doc['sample']})",
                  title_justify="left")
    for col, just in [("step", "left"), ("p(run)", "right"), ("calls", "right"), ("cost", "right"),
                      ("hits", "right"), ("cost/hit", "right"), ("from", "left")]:
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for s in doc["steps"]:
        src = s["source"] + (" [yellow](worst case)[/yellow]" if s["no_history"] else "")
        table.add_row(s["step"], f"{s['p_run']:.0%}", f"{s['expected_calls']:,.0f}", _money(s["expected_cost"]),
                      f"{s['expected_hits']:,.0f}", _money(s["cost_per_hit"]), src)
    console.print(table)
    t = doc["total"]
    console.print(f"expected total {_money(t['expected'])} (range {_money(t['low'])} - {_money(t['high'])}, "
                  f"~95 %); run with --budget-total {doc['budget_total']:.2f}", highlight=False)
    if doc["dominant"]:
        console.print(f"dominated by: {', '.join(doc['dominant'])}", highlight=False)
    if doc["no_history"]:
        console.print(f"[yellow]no history[/yellow] for {', '.join(doc['no_history'])}: assumed the costliest "
                      "outcome; run a small batch first for a sharper forecast", highlight=False)


def render_forecast_vs_actual(cmp: dict[str, Any], console: Console) -> None:
    """Print a forecast next to what the run really did."""
    from rich.table import Table

    table = Table(title="forecast vs actual", title_justify="left")
    for col in ("step", "calls (forecast)", "calls (actual)", "cost (forecast)", "cost (actual)"):
        table.add_column(col, justify="left" if col == "step" else "right")
    for r in cmp["steps"]:
        table.add_row(r["step"], f"{r['forecast_calls']:,.0f}", f"{r['actual_calls']:,}",
                      _money(r["forecast_cost"]), _money(r["actual_cost"]))
    console.print(table)
    t = cmp["total"] or {}
    console.print(f"total: forecast {_money(t.get('expected'))} ({_money(t.get('low'))} - {_money(t.get('high'))}) "
                  f"for {cmp['leads']:,} leads; actual {_money(cmp['actual_total'])}", highlight=False)


async def forecast_for_run(meta: dict[str, Any], report: dict[str, Any], history_url: str) -> dict[str, Any] | None:
    """The forecast made for a run's route and input before it started, compared with its report."""
    from waystation.history import open_history
    from waystation.history.estimate import forecast_vs_actual

    if not meta.get("input") or not meta.get("route_name"):
        return None
    key = f"{meta['input']}:{meta.get('input_size', -1)}"
    history = open_history(history_url)
    try:
        est = await history.estimate_for(str(meta["route_name"]), key, before=meta.get("started_at"))
    finally:
        await history.close()
    return forecast_vs_actual(est, report) if est is not None else None


# ============================================================================ history


@click.command("history")
@click.argument("run_id", required=False)
@click.option("--route", default=None, help="Only runs of this route (by name).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Newest runs listed.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@_CHECKPOINT
@_HISTORY
def history_command(run_id: str | None, route: str | None, limit: int, as_json: bool, checkpoint: str,
                    history_url: str | None) -> None:
    """List recorded runs (newest first), or show RUN_ID's per-step figures from the history.

    Every `waystation run` and every worker records its figures; workers of one queue run
    are merged. From Python: waystation.history.open_history(url).runs() / .run(id).
    """
    from waystation.cli import output
    from waystation.cli.errors import UsageProblem
    from waystation.history import default_history_url

    if run_id is None:
        emit_history(history_url, checkpoint, route, limit, output.resolve_format(None, as_json))
        return
    url = history_url or default_history_url(checkpoint) or DEFAULT_SQLITE_URL
    found = _read_history(url, run_id, None, None)
    if not found:
        raise UsageProblem(f"no run {run_id!r} in the run history ({url})",
                           "`waystation runs --history` lists the recorded runs")
    if as_json:
        click.echo(json.dumps(found[0].summary(), indent=2))
        return
    _render_run(found[0], _consoles()[0])


def _when(ts: float | None) -> str:
    from datetime import UTC, datetime

    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _read_history(url: str, run_id: str | None, route: str | None, limit: int | None) -> list[RunHistory]:
    from waystation.cli.errors import service
    from waystation.history import open_history

    async def go() -> list[RunHistory]:
        store = open_history(url)
        try:
            if run_id is not None:
                one = await store.run(run_id)
                return [one] if one is not None else []
            return await store.runs(route=route, limit=limit)
        finally:
            await store.close()

    with service("the run history", url):
        return asyncio.run(go())


def emit_history(history_url: str | None, checkpoint: str, route: str | None, limit: int | None, fmt: str) -> None:
    """List the runs of the history store (``waystation runs --history``, ``waystation history``)."""
    from waystation.cli import output
    from waystation.history import default_history_url

    url = history_url or default_history_url(checkpoint) or DEFAULT_SQLITE_URL
    runs = _read_history(url, None, route, limit)
    rows = [{"run_id": r.run_id, "route": r.route, "source": r.source + (f" x{r.segments}" if r.segments > 1 else ""),
             "started": _when(r.started_at), "leads": f"{r.lead_total:,}", "cost": _money(r.total_cost),
             "input": r.input_name or "-"} for r in runs]
    columns = [output.Column("run_id", "run id", priority=100, name=True),
               output.Column("route", "route", priority=80, name=True),
               output.Column("source", "source", priority=40),
               output.Column("started", "started (UTC)", priority=60),
               output.Column("leads", "leads", priority=50, justify="right"),
               output.Column("cost", "cost", priority=70, justify="right"),
               output.Column("input", "input", priority=20)]
    output.emit(rows, columns, fmt, title="run history", json_rows=[r.summary() for r in runs],
                empty="no runs recorded yet")


def _render_run(run: RunHistory, console: Console) -> None:
    from rich.table import Table

    from waystation.report import _secs

    table = Table(title=f"run {run.run_id} — route {run.route} ({run.source}, {run.segments} segment(s))",
                  title_justify="left")
    for col in ("step", "runs", "hits", "misses", "errors", "skipped", "cached", "p50", "p95", "cost",
                "hits per field"):
        table.add_column(col, justify="left" if col in ("step", "errors", "skipped", "hits per field") else "right",
                         overflow="fold")
    for s in run.steps:
        table.add_row(
            s.step, str(s.runs), str(s.hits), str(s.misses),
            ", ".join(f"{k} {v}" for k, v in s.errors.items()) or "-",
            ", ".join(f"{k} {v}" for k, v in s.skipped.items()) or "-", str(s.cache_hits),
            _secs(s.latency_p50), _secs(s.latency_p95), _money(s.cost),
            ", ".join(f"{k} {v}" for k, v in s.field_hits.items()) or "-")
    console.print(table)
    console.print(f"leads {run.lead_total:,}; total cost {_money(run.total_cost)}; input {run.input_name or '-'}",
                  highlight=False)


# ============================================================================ cache


@click.group("cache")
def cache_group() -> None:
    """Manage the paid-lookup cache: stats, prune (expired entries), clear."""


_CACHE = click.option("--cache-url", "cache_url", default=None, envvar="WAYSTATION_CACHE",
                      help="The cache: sqlite:///path or redis://host:port/db?prefix= "
                           "(default: beside the checkpoints; also WAYSTATION_CACHE).")
_STATION = click.option("--station", default=None, help="Only this station's entries.")


def _cache_run(ctx: click.Context, checkpoint: str, cache_url: str | None, op: str, station: str | None) -> Any:
    from waystation.cache import default_cache_url, open_cache
    from waystation.cli.options import require_existing_sqlite

    _, err_console = _consoles()
    url = cache_url or default_cache_url(checkpoint)
    require_existing_sqlite(url, "lookup cache")

    async def go() -> Any:
        cache = open_cache(url)
        try:
            if op == "stats":
                return await cache.stats(station)
            if op == "prune":
                return await cache.prune(station)
            return await cache.clear(station)
        finally:
            await cache.close()

    try:
        return asyncio.run(go())
    except (OSError, ValueError, ConnectionError) as exc:
        err_console.print(f"[red]error[/red] {exc}", highlight=False)
        ctx.exit(2)


@cache_group.command("stats")
@_STATION
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@_CHECKPOINT
@_CACHE
@click.pass_context
def cache_stats(ctx: click.Context, station: str | None, as_json: bool, checkpoint: str, cache_url: str | None) -> None:
    """Entries (fresh and expired), hits, misses and writes per station."""
    from rich.table import Table

    console, _ = _consoles()
    stats = _cache_run(ctx, checkpoint, cache_url, "stats", station)
    if as_json:
        click.echo(json.dumps([s.model_dump() for s in stats], indent=2))
        return
    if not stats:
        console.print("the cache is empty")
        return
    table = Table(title="lookup cache", title_justify="left")
    for col in ("station", "entries", "expired", "hits", "misses", "writes", "oldest", "newest"):
        table.add_column(col, justify="left" if col == "station" else "right")

    def age(v: float | None) -> str:
        if v is None:
            return "-"
        return f"{v / 86400:.1f} d" if v >= 86400 else f"{v / 3600:.1f} h" if v >= 3600 else f"{v:.0f} s"

    for s in stats:
        table.add_row(s.station, str(s.entries), str(s.expired), str(s.hits), str(s.misses), str(s.writes),
                      age(s.oldest_age), age(s.newest_age))
    console.print(table)


@cache_group.command("prune")
@_STATION
@_CHECKPOINT
@_CACHE
@click.pass_context
def cache_prune(ctx: click.Context, station: str | None, checkpoint: str, cache_url: str | None) -> None:
    """Delete expired entries."""
    n = _cache_run(ctx, checkpoint, cache_url, "prune", station)
    click.echo(f"pruned {n} expired entr{'y' if n == 1 else 'ies'}")


@cache_group.command("clear")
@_STATION
@_CHECKPOINT
@_CACHE
@click.pass_context
def cache_clear(ctx: click.Context, station: str | None, checkpoint: str, cache_url: str | None) -> None:
    """Delete every entry (of --station): the next run buys those lookups again."""
    n = _cache_run(ctx, checkpoint, cache_url, "clear", station)
    click.echo(f"cleared {n} entr{'y' if n == 1 else 'ies'}")
