"""``waystation run`` (a batch of leads through a route) and ``waystation report`` (a run's figures).

Kept light at import time: the batch machinery is imported when a command runs, so that
``waystation --help`` and ``waystation stations`` stay fast.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape

from waystation.cli.errors import EXIT_USAGE, UsageProblem, route_error, service, translate
from waystation.cli.options import checkpoint_option, format_option
from waystation.limits import MAX_FIELD_SIZE
from waystation.stores import DEFAULT_SQLITE_URL

if TYPE_CHECKING:
    from rich.console import Console

    from waystation.batch import BatchConfig
    from waystation.plan import Plan
    from waystation.plugins import PluginHost


def _consoles() -> tuple[Console, Console]:
    from waystation.cli.context import console, err_console

    return console, err_console


def _host(ctx: click.Context) -> PluginHost:
    from waystation.cli.context import get_host

    return get_host(ctx)


def _print_plan(plan: Plan, cfg: BatchConfig, fmt: str, header: list[str] | None, console: Console) -> None:
    from waystation.batch import jsonl_keys, output_columns
    from waystation.cli.output import plan_lines

    for line in plan_lines(plan, str(cfg.route)):
        console.print(line, markup=False)

    needed = sorted(plan.requirements())
    keys = header if header is not None else jsonl_keys(cfg.input, **cfg.reader_options(plan.route))
    console.print(f"input {cfg.input} ({fmt}): " + (f"columns {', '.join(header)}" if header is not None
                                                     else f"JSON lines; first record: {', '.join(keys or [])}"),
                  markup=False)
    missing = [f for f in needed if keys is None or f not in keys]
    if missing:  # JSONL with no readable first record
        console.print(f"required input fields: {', '.join(needed)} — the first record lacks "
                      f"{', '.join(missing)}: records without them will be rejected", markup=False)
    else:
        console.print(f"required input fields: {', '.join(needed) or 'none'} — ok", markup=False)
    console.print("preflight (input columns, settings and keys, data files, conditions): ok"
                  + (f", {len(plan.warnings)} warning(s)" if plan.warnings else ""), markup=False)
    if header is not None:
        console.print(f"output {cfg.output_path()}: columns {', '.join(output_columns(plan, header))}",
                      markup=False)
    if cfg.budget_total is not None:
        console.print(f"batch budget: ${cfg.budget_total:,.4f}")
    console.print("dry run: nothing was called")


@click.command("run")
@click.argument("route", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("input_file", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Output file (default: <INPUT stem>.out.<ext> next to INPUT).")
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path),
              help="Rejects file, JSONL (default: <OUTPUT stem>.rejects.jsonl).")
@click.option("--format", "input_format", type=click.Choice(["csv", "jsonl"]),
              help="Input format (default: by extension).")
@click.option("--output-format", type=click.Choice(["csv", "jsonl"]),
              help="Output format (default: by the output's extension, else the input's).")
@click.option("-c", "--concurrency", type=click.IntRange(1, 100_000), default=16, show_default=True,
              help="Leads in flight.")
@click.option("--budget-total", type=click.FloatRange(min=0), default=None,
              help="Batch budget in USD, reserved like the per-lead budget: never exceeded.")
@checkpoint_option(default=DEFAULT_SQLITE_URL,
                   help="Checkpoint store: sqlite:///relative.db, sqlite:////absolute.db, redis://host:port/db.")
@click.option("--run-id", default=None, help="Name this run (default: <route>-<UTC time>-<hex>).")
@click.option("--resume", "resume", default=None, metavar="RUN_ID", help="Resume an interrupted run.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="Only the first N input records.")
@click.option("--dry-run", is_flag=True, help="Compile, check the input's columns, print the plan; call nothing.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the report as JSON to this file.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Expose Prometheus metrics on this port while the run lasts.")
@click.option("--metrics-addr", default="127.0.0.1", show_default=True, help="Address for --metrics-port.")
@click.option("--grace", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds in-flight leads may finish after Ctrl-C/SIGTERM before they are cancelled.")
@click.option("--max-field-size", type=click.IntRange(min=1), default=MAX_FIELD_SIZE, show_default=True,
              help="Largest field (characters) or JSONL line (bytes); larger records are rejected.")
@click.option("--csv-formulas", type=click.Choice(["escape", "keep"]), default="escape", show_default=True,
              help="CSV output: 'escape' writes cells a spreadsheet would run as formulas (=, +, -, @ ...) "
                   "with a leading ' (numbers and E.164 phones stay as they are); 'keep' writes them as they "
                   "are, for machine-to-machine files.")
@click.option("--progress/--no-progress", default=None,
              help="Live progress bar (default: on when stdout is a terminal).")
@click.option("--history", "history_url", default=None, envvar="WAYSTATION_HISTORY",
              help="Run history store: sqlite:///path or postgresql+psycopg://... (default: the checkpoint "
                   "SQLite file).")
@click.option("--map", "maps", multiple=True, metavar="'COLUMN=field'",
              help="Read input column COLUMN as lead field `field`, e.g. --map 'Phone Number=phone' "
                   "(repeatable; adds to the route's map:).")
@click.option("--delimiter", default=",", show_default=True,
              help="CSV field delimiter: ',', ';', '|', or '\\t' (also 'tab') for tab-separated files.")
@click.option("--encoding", default="utf-8", show_default=True,
              help="Text encoding of the input, e.g. latin-1 (cp1252) for many CRM exports.")
@click.option("--fail-on", "fail_on", default=None, metavar="RULES",
              help="Exit 4 when too many leads did not pass: e.g. 'failed>5%', 'held>0', "
                   "'failed+held>=10' (comma-separated; 'none' turns it off). Default: held>0.")
@click.pass_context
def run_command(ctx: click.Context, route: Path, input_file: Path, output: Path | None, rejects: Path | None,
                input_format: str | None, output_format: str | None, concurrency: int,
                budget_total: float | None, checkpoint: str, run_id: str | None, resume: str | None,
                limit: int | None, dry_run: bool, report_path: Path | None, metrics_port: int | None,
                metrics_addr: str, grace: float, max_field_size: int, csv_formulas: str,
                progress: bool | None, history_url: str | None, maps: tuple[str, ...], delimiter: str,
                encoding: str, fail_on: str | None) -> None:
    """Run every lead of INPUT (CSV or JSONL) through ROUTE, with checkpoints.

    \b
    Output: every input column, the fields the route adds, then _lead_id, _status
    (succeeded | stopped | failed | rejected), _reason and _cost. Failed and rejected
    leads also go to the rejects file with their input line number and error.
    Ctrl-C / SIGTERM: in-flight leads finish (up to --grace s), the resume command is
    printed, exit 130 / 143. A second Ctrl-C exits at once.
    Before any lead runs, preflight checks the input's columns against the route
    (--map renames columns), the delimiter (--delimiter) and the stations' keys and
    data files, and refuses with every problem at once (exit 2).
    Held leads (a gate could not run, the batch budget ran out) are retried by --resume.
    Exit status: 0 done, 1 the batch broke off (e.g. the checkpoint store failed; resume it),
    2 bad route/input/options or refused by preflight, 3 missing dependency or unreachable
    service, 4 a --fail-on rule was met (default held>0), 130/143 interrupted.
    """
    import codecs

    from waystation.batch import BatchConfig, BatchError, BatchRunner, compile_for_input
    from waystation.cli.report_view import print_report
    from waystation.errors import RouteError
    from waystation.failon import DEFAULT_FAIL_ON, EXIT_FAIL_ON, check_fail_on, parse_fail_on
    from waystation.preflight import parse_maps

    console, err_console = _consoles()
    if resume and run_id:
        raise click.UsageError("--resume and --run-id do not go together (--resume names the run)")
    try:
        rules = parse_fail_on(DEFAULT_FAIL_ON if fail_on is None else fail_on)
        mapping = parse_maps(maps)
        codecs.lookup(encoding)
    except (ValueError, LookupError) as exc:
        raise click.UsageError(str(exc) if not isinstance(exc, LookupError) else
                               f"--encoding {encoding!r}: unknown encoding (try utf-8 or latin-1)") from None
    delimiter = {"\\t": "\t", "tab": "\t", "\t": "\t"}.get(delimiter, delimiter)
    if len(delimiter) != 1:
        raise click.UsageError(f"--delimiter {delimiter!r}: one character, e.g. ';' or '\\t'")
    host = _host(ctx)
    cfg = BatchConfig(
        route=route, input=input_file, output=output, rejects=rejects, input_format=input_format,
        output_format=output_format, concurrency=concurrency, budget_total=budget_total, checkpoint=checkpoint,
        run_id=run_id, resume=resume, limit=limit, grace=grace, max_field_size=max_field_size,
        progress=sys.stdout.isatty() if progress is None else progress, metrics_port=metrics_port,
        metrics_addr=metrics_addr, report_path=report_path, handle_signals=True,
        checkpoint_from_env=ctx.get_parameter_source("checkpoint") is click.core.ParameterSource.ENVIRONMENT,
        escape_formulas=csv_formulas == "escape",
        history=history_url,
        maps=mapping, delimiter=delimiter, encoding=encoding,
    )

    try:
        if dry_run:
            _, plan, fmt, header = compile_for_input(cfg, host)
            for w in plan.warnings:
                err_console.print(f"[yellow]warning[/yellow] {escape(str(w))}")
            _print_plan(plan, cfg, fmt, header, console)
            return
        runner = BatchRunner(cfg, host, console=console,
                             err=lambda msg: err_console.print(msg, markup=False, highlight=False))
        with service("Redis" if checkpoint.lower().startswith(("redis", "unix")) else "the checkpoint store",
                     checkpoint):
            result = asyncio.run(runner.run())
    except KeyboardInterrupt:  # before the signal handlers were installed: nothing ran yet
        err_console.print("interrupted")
        ctx.exit(130)
        return
    except RouteError as exc:
        raise route_error(exc, "refused before any lead ran: fix the route or the input (--map, --delimiter, "
                               "--encoding, keys); `waystation run --dry-run ROUTE INPUT` checks both without "
                               "calling anything") from None
    except (BatchError, ValueError, OSError) as exc:
        known = translate(exc)
        if known is not None:
            raise known from None
        raise UsageProblem(str(exc), exit_code=EXIT_USAGE) from None
    print_report(result.report, more="`waystation report RUN_ID --json` shows all")
    rejected = str(result.rejects) if result.rejects.exists() else "none"
    click.echo(f"output: {result.output} ({result.written:,} rows); rejects: {rejected}; run id: {result.run_id}")
    if result.exit_code:
        if result.error:
            err_console.print(f"[red]error[/red] {escape(str(result.error))}", highlight=False)
            err_console.print("the batch broke off; nothing completed is lost. Once fixed, resume with:",
                              highlight=False)
        else:
            err_console.print("interrupted; resume with:", highlight=False)
        err_console.print(f"  {result.resume_command}", markup=False, highlight=False, soft_wrap=True)
        sys.stdout.flush()
        ctx.exit(result.exit_code)
        return
    held = result.report.leads.get("held", 0)
    if held:
        err_console.print(f"{held} lead(s) held (a gate could not run, or the batch budget ran out): they are "
                          "not done; retry them (raise --budget-total if the budget held them) with:",
                          markup=False, highlight=False)
        err_console.print(f"  {runner.resume_command}", markup=False, highlight=False, soft_wrap=True)
    met = check_fail_on(rules, result.report.leads)
    if met:
        for why in met:
            err_console.print(f"[red]error[/red] --fail-on: {why}", highlight=False)
        sys.stdout.flush()
        ctx.exit(EXIT_FAIL_ON)


@click.command("report")
@click.argument("run_id", required=False)
@checkpoint_option(default=DEFAULT_SQLITE_URL, help="The checkpoint store the run used.")
@format_option
@click.option("--history", "history_url", default=None, envvar="WAYSTATION_HISTORY",
              help="Where forecasts were kept (default: the checkpoint SQLite file).")
@click.pass_context
def report_command(ctx: click.Context, run_id: str | None, checkpoint: str, fmt: str | None, as_json: bool,
                   history_url: str | None) -> None:
    """Print the per-station report of RUN_ID (without RUN_ID: the latest run in the store).

    The figures are rebuilt from the run's saved lead states, so they are right also for a run
    that was interrupted or killed. A store or a run that does not exist is an error (exit 2);
    nothing is created. `waystation runs` lists the runs. When `waystation estimate` forecast
    this route on this input before the run, the forecast is shown next to the actual figures.
    """
    from waystation.cli.report_view import print_report
    from waystation.cli.runs import with_store
    from waystation.report import report_from_store

    async def go(store: Any) -> dict[str, Any] | None:
        rid = run_id
        if rid is None:
            runs = await store.list_runs()
            if not runs:
                raise UsageProblem("no runs in this checkpoint store", "run one with `waystation run ROUTE INPUT`")
            rid = max(runs, key=lambda r: (r.get("updated_at") or 0))["run_id"]
        meta = await store.load_run(rid)
        if meta is None:
            raise UsageProblem(f"no run {rid!r} in this checkpoint store ({checkpoint})",
                               "`waystation runs` lists the runs it holds; --checkpoint picks another store")
        complete = meta.get("status") == "complete"
        leads = meta.get("leads") if complete else None
        rep = await report_from_store(store, rid, leads=leads, complete=complete,
                                      budget_total=(meta.get("options") or {}).get("budget_total"))
        if not complete:
            rep.leads["rejected"] = int((meta.get("leads") or {}).get("rejected", 0))
        return {"meta": meta, "report": rep}

    got = with_store(checkpoint, go)
    assert got is not None
    meta, rep = got["meta"], got["report"]
    cmp = _forecast(meta, rep.as_dict(), history_url, checkpoint)
    if as_json or fmt == "json":
        click.echo(json.dumps({**rep.as_dict(), "forecast": cmp} if cmp else rep.as_dict(), indent=2))
        return
    print_report(rep, fmt)
    if cmp:
        from waystation.cli.cost import render_forecast_vs_actual

        render_forecast_vs_actual(cmp, _consoles()[0])
    if meta.get("status") != "complete" and meta.get("resume_command"):
        click.echo(f"status {meta.get('status')}; resume with: {meta['resume_command']}")


def _forecast(meta: dict[str, Any], report: dict[str, Any], history_url: str | None,
              checkpoint: str) -> dict[str, Any] | None:
    """The forecast made for this run's route and input before it started, next to its report
    (``None`` when there is none; a history that cannot be read only warns)."""
    from waystation.cli.cost import forecast_for_run
    from waystation.history import default_history_url

    url = history_url or default_history_url(checkpoint) or DEFAULT_SQLITE_URL
    try:
        return asyncio.run(forecast_for_run(meta, report, url))
    except Exception as exc:  # the forecast is an extra: the report stands without it
        click.echo(f"warning: forecast not read: {exc}", err=True)
        return None
