"""``waystation``: check routes, list plugins and stations, run leads (``waystation --help``).

Plugins add sub-commands through the ``register_commands`` hook. Listing commands load plugins
but never import a plugin's heavy dependencies.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from pathlib import Path

import click

from waystation.cli import logs, output
from waystation.cli.breaker import breaker
from waystation.cli.context import console, err_console, get_host, state
from waystation.cli.cost import cache_group, estimate_command, history_command
from waystation.cli.errors import (
    EXIT_BROKE_OFF,
    EXIT_SIGINT,
    EXIT_USAGE,
    CliError,
    print_error,
    route_error,
    translate,
)
from waystation.cli.forget import forget_command
from waystation.cli.init import init_command
from waystation.cli.new_plugin import new_plugin
from waystation.cli.options import format_option
from waystation.cli.run import report_command, run_command
from waystation.cli.runs import runs
from waystation.cli.suppress import suppress
from waystation.cli.worker import enqueue_command, export_command, queue_command, worker_command
from waystation.errors import RouteError
from waystation.plugins import PLUGIN_API_VERSION

__all__ = ["cli", "console", "err_console", "get_host", "main", "run_cli"]

class _Cli(click.Group):
    """The root group: loads plugin commands lazily so ``--help`` lists them."""

    _plugins_added = False

    def _add_plugin_commands(self, ctx: click.Context) -> None:
        if self._plugins_added:
            return
        self._plugins_added = True
        try:
            host = get_host(ctx)
        except CliError:  # reported when a command needs the host
            return
        from waystation.hookcall import HookFailure, call_each

        def warn(failure: HookFailure) -> None:
            print_error(f"plugin {failure.plugin} failed to add its commands: {type(failure.error).__name__}: "
                        f"{failure.error}", label="warning")

        # each implementation separately, with the arguments it declares (pluggy's rule)
        call_each(host.pm, "register_commands", warn, cli=self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands(ctx)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None:
            self._add_plugin_commands(ctx)
            cmd = super().get_command(ctx, cmd_name)
        return cmd


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--strict-plugins", is_flag=True, default=None,
              help="Fail when any plugin cannot load (also WAYSTATION_STRICT_PLUGINS=1).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv: debug); also shows tracebacks.")
@click.option("-q", "--quiet", count=True, help="Less log output (-qq: only critical).")
@click.option("--log-level", type=click.Choice(logs.LEVELS, case_sensitive=False), envvar="WAYSTATION_LOG_LEVEL",
              default=None, help="Log level (overrides -v/-q; also WAYSTATION_LOG_LEVEL).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              envvar="WAYSTATION_LOG_FORMAT", help="json: one JSON object a line with station, lead_id, attempt, "
              "category fields.")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Append log records to this file instead of stderr.")
@click.option("--debug", is_flag=True, envvar="WAYSTATION_DEBUG",
              help="Print the full traceback of an error (also WAYSTATION_DEBUG=1).")
@click.option("--log-pii", is_flag=True, default=False, envvar="WAYSTATION_LOG_PII",
              help="Keep phone numbers, e-mails and names in log lines (masked by default; also "
                   "WAYSTATION_LOG_PII=1). For debugging only.")
@click.version_option(package_name="waystation", message=f"%(prog)s %(version)s (plugin API {PLUGIN_API_VERSION})")
@click.pass_context
def cli(ctx: click.Context, strict_plugins: bool | None, verbose: int, quiet: int, log_level: str | None,
        log_format: str, log_file: Path | None, debug: bool, log_pii: bool) -> None:
    """waystation: carry leads along a YAML route of enrichment stations.

    \b
    Typical use:
      waystation init my-project          a starter project (routes, example leads)
      waystation stations                 what is installed
      waystation check routes/free-only.yaml
      waystation run routes/free-only.yaml examples/leads.csv -o out.csv

    \b
    Exit codes: 0 done, 1 a run broke off (resume it), 2 usage/route/input error,
    3 missing dependency or service, 130/143 interrupted.
    """
    ctx.ensure_object(dict)["strict_plugins"] = strict_plugins
    state["debug"] = state["debug"] or debug or verbose > 0
    logs.setup(verbose=verbose, quiet=quiet, level=log_level, fmt=log_format, file=log_file)
    from waystation.redact import install, set_log_pii

    if log_pii:
        set_log_pii(True)
    install()


@cli.command()
@click.argument("route", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--input-fields", default=None, help="Comma-separated fields the input file has.")
@click.pass_context
def check(ctx: click.Context, route: str, as_json: bool, input_fields: str | None) -> None:
    """Compile ROUTE against the installed stations and print its levels.

    Exits 2 (like `run`) and lists every error (file:line:column) when the route is not valid.
    """
    from waystation.plan import compile_route
    from waystation.route import Route

    host = get_host(ctx)
    fields = [f.strip() for f in input_fields.split(",")] if input_fields else None
    try:
        plan = compile_route(Route.from_file(route), host, fields)
    except RouteError as exc:
        raise route_error(exc) from None
    from waystation.preflight import preflight

    found = preflight(plan, fields)  # keys and data files of every station, fields in conditions
    if found.errors:
        raise route_error(RouteError(found.errors), "refused by preflight: fix these and check again") from None
    plan.warnings.extend(found.warnings)
    if as_json:  # warnings are in the JSON
        click.echo(json.dumps({"route": plan.name, "budget": plan.budget, "steps": plan.describe(),
                               "warnings": [str(w) for w in plan.warnings]}, indent=2))
        return
    for w in plan.warnings:
        print_error(str(w), label="warning")
    for line in output.plan_lines(plan, route):
        click.echo(line)
    needed = sorted(plan.requirements())
    if needed:
        click.echo(f"input must provide: {', '.join(needed)}")


STATION_COLUMNS = [
    output.Column("name", "station", priority=100, name=True),
    output.Column("plugin", "plugin", priority=70, name=True),
    output.Column("cost", "cost", priority=60, justify="right"),
    output.Column("requires", "requires", priority=50),
    output.Column("provides", "provides", priority=45),
    output.Column("retry", "retry", priority=10),
    output.Column("breaker", "breaker", priority=5),
]


@cli.command()
@click.argument("name", required=False)
@format_option
@click.pass_context
def stations(ctx: click.Context, name: str | None, fmt: str | None, as_json: bool) -> None:
    """List every installed station, or show the station NAME in full.

    \b
    The listing: name, plugin, price, requires, provides, retry and breaker defaults.
    With NAME: its description, requires / optional / provides with types, settings
    with their environment variables, price and policies.
    """
    from waystation.cli.describe import describe_station, station_row, unknown_station

    host = get_host(ctx)
    fmt = output.resolve_format(fmt, as_json)
    if name is not None:
        info = host.stations.get(name)
        if info is None:
            raise unknown_station(host, name)
        describe_station(info, fmt)
        return
    rows = [station_row(info) for _, info in sorted(host.stations.items())]
    table = [{**r, "plugin": f"{r['plugin']} {r['version']}".strip(), "cost": f"${r['cost']:g}",
              "provides": list(r["provides"]),
              "retry": f"{r['retry']['max_attempts'] if r['retry'] else 1} attempts",
              "breaker": (f"{r['breaker']['failure_threshold']} fails / {r['breaker']['reset_after']:g}s"
                          if r["breaker"] else None)} for r in rows]
    output.emit(table, STATION_COLUMNS, fmt, title="stations", json_rows=rows,
                empty="no station is installed: pip install a station plugin, e.g. pip install waystation-identity")


PLUGIN_COLUMNS = [
    output.Column("distribution", "distribution", priority=100, name=True),
    output.Column("version", "version", priority=50),
    output.Column("status", "status", priority=90),
    output.Column("stations", "stations", priority=40),
    output.Column("api", "api", priority=10),
    output.Column("error", "error", priority=60),
]


@cli.command()
@format_option
@click.pass_context
def plugins(ctx: click.Context, fmt: str | None, as_json: bool) -> None:
    """List installed plugins: distribution, version, stations, and any that failed to load."""
    host = get_host(ctx)
    rows = [p.as_dict() for p in host.plugins]
    fmt = output.resolve_format(fmt, as_json)
    if fmt == "json":
        click.echo(json.dumps({"plugin_api": PLUGIN_API_VERSION, "plugins": rows}, indent=2))
        return
    table = [{**r, "api": r["api"] or "undeclared", "error": r["error"] or ""} for r in rows]
    output.emit(table, PLUGIN_COLUMNS, fmt, title=f"plugins (plugin API {PLUGIN_API_VERSION})",
                empty="no plugin installed")


cli.add_command(run_command)
cli.add_command(report_command)
cli.add_command(runs)
cli.add_command(forget_command)
cli.add_command(new_plugin)
cli.add_command(init_command)
cli.add_command(breaker)
cli.add_command(enqueue_command)
cli.add_command(worker_command)
cli.add_command(queue_command)
cli.add_command(export_command)
cli.add_command(estimate_command)
cli.add_command(history_command)
cli.add_command(cache_group)
cli.add_command(suppress)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``waystation`` script: runs the command and maps every error to one or
    two lines on stderr and an exit code of the table in :mod:`waystation.cli.errors`."""
    sys.exit(run_cli(argv))


def run_cli(argv: list[str] | None = None) -> int:
    """Run the command line ``argv``; returns the exit code (see :func:`main`)."""
    try:
        rv = cli.main(args=argv, prog_name="waystation", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except CliError as exc:
        if state["debug"] and exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__)
        exc.show()
        return exc.exit_code
    except click.UsageError as exc:  # two lines, not click's usage block
        where = exc.ctx.command_path if exc.ctx is not None else "waystation"
        print_error(exc.format_message(), f"see `{where} --help`")
        return exc.exit_code
    except click.ClickException as exc:  # a plain one is the user's to fix: a usage error
        print_error(exc.format_message())
        return EXIT_USAGE if exc.exit_code == 1 else exc.exit_code
    except (KeyboardInterrupt, click.Abort):
        print_error("interrupted", label="stopped")
        return EXIT_SIGINT
    except BrokenPipeError:  # `waystation stations | head`: the reader left; not an error
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        known = translate(exc)
        if state["debug"]:
            traceback.print_exc()
        if known is not None:
            known.show()
            return known.exit_code
        print_error(f"internal error: {type(exc).__name__}: {exc}",
                    "this is a bug in waystation or a plugin: run again with --debug for the traceback "
                    "and report it" if not state["debug"] else None)
        return EXIT_BROKE_OFF


if __name__ == "__main__":  # pragma: no cover
    main()
