"""``waystation``: check routes, list plugins and stations, run leads (``waystation --help``).

Plugins add sub-commands through the ``register_commands`` hook. Listing commands load plugins
but never import a plugin's heavy dependencies.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from waystation.errors import DuplicateStationError, PluginError, RouteError
from waystation.plan import compile_route
from waystation.plugins import PLUGIN_API_VERSION, PluginHost
from waystation.route import Route

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def get_host(ctx: click.Context) -> PluginHost:
    """The plugin host for this invocation (plugins loaded once, on first use)."""
    obj = ctx.ensure_object(dict)
    host = obj.get("host")
    if host is None:
        strict = obj.get("strict_plugins")
        try:
            host = PluginHost.discover(strict=strict)
        except (PluginError, DuplicateStationError) as exc:
            err_console.print(f"[red]plugin error:[/red] {exc}")
            ctx.exit(2)
        obj["host"] = host
    assert isinstance(host, PluginHost)
    return host


class _Cli(click.Group):
    """The root group: loads plugin commands lazily so ``--help`` lists them."""

    _plugins_added = False

    def _add_plugin_commands(self, ctx: click.Context) -> None:
        if self._plugins_added:
            return
        self._plugins_added = True
        if ctx.resilient_parsing and os.environ.get("_WAYSTATION_COMPLETE") is None:
            pass
        try:
            host = get_host(ctx)
        except SystemExit:  # pragma: no cover
            return
        for impl in host.pm.hook.register_commands.get_hookimpls():
            try:
                impl.function(self) if list(impl.argnames) == ["cli"] else impl.function(cli=self)
            except Exception as exc:
                err_console.print(f"[yellow]warning:[/yellow] plugin {impl.plugin_name} failed to add "
                                  f"commands: {exc}")

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
@click.version_option(package_name="waystation", message=f"%(prog)s %(version)s (plugin API {PLUGIN_API_VERSION})")
@click.pass_context
def cli(ctx: click.Context, strict_plugins: bool | None) -> None:
    """waystation: carry leads along a YAML route of enrichment stations.

    \b
    Typical use:
      waystation stations                 what is installed
      waystation check routes/free-only.yaml
      waystation run routes/free-only.yaml examples/leads.csv -o out.csv
    """
    ctx.ensure_object(dict)["strict_plugins"] = strict_plugins


@cli.command()
@click.argument("route", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--input-fields", default=None, help="Comma-separated fields the input file has.")
@click.pass_context
def check(ctx: click.Context, route: str, as_json: bool, input_fields: str | None) -> None:
    """Compile ROUTE against the installed stations and print its levels.

    Exits 1 and lists every error (file:line:column) when the route is not valid.
    """
    host = get_host(ctx)
    fields = [f.strip() for f in input_fields.split(",")] if input_fields else None
    try:
        plan = compile_route(Route.from_file(route), host, fields)
    except RouteError as exc:
        for p in exc.problems:
            click.echo(f"{p}", err=True)
        click.echo(f"{len(exc.problems)} error(s): route not valid", err=True)
        ctx.exit(1)
        return
    if as_json:
        click.echo(json.dumps({"route": plan.name, "budget": plan.budget, "steps": plan.describe(),
                               "warnings": [str(w) for w in plan.warnings]}, indent=2))
        return
    console.print(f"route [bold]{plan.name}[/bold] ({route}): {len(plan.steps)} steps, "
                  f"{len(plan.levels)} levels, budget "
                  f"{'none' if plan.budget is None else f'${plan.budget:.4f} per lead'}")
    for line in plan.level_lines():
        console.print(f"  {line}", markup=False)
    for w in plan.warnings:
        err_console.print(f"[yellow]warning[/yellow] {w}")
    needed = sorted(plan.requirements())
    if needed:
        console.print(f"input must provide: {', '.join(needed)}")


def _policy(p: Any) -> Any:
    return None if p is None else p.model_dump()


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def stations(ctx: click.Context, as_json: bool) -> None:
    """List every installed station: requires, provides, cost, retry/breaker defaults, plugin."""
    host = get_host(ctx)
    rows = []
    for name, info in sorted(host.stations.items()):
        c = info.cls
        rows.append({
            "name": name, "plugin": info.plugin, "version": info.version,
            "requires": list(c.requires), "optional": list(c.optional),
            "provides": {k: getattr(v, "__name__", str(v)) for k, v in c.provides.items()},
            "cost": c.cost, "paid": c.is_paid(), "timeout": c.timeout, "retry": _policy(c.retry),
            "breaker": _policy(c.breaker), "rate_limit": _policy(c.rate_limit), "in_doubt": c.in_doubt,
            "doc": (c.__doc__ or "").strip().split("\n")[0],
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("no station installed (pip install a waystation plugin, e.g. plugins/waystation-identity)")
        return
    table = Table(title="stations")
    for col in ("station", "plugin", "requires", "provides", "cost", "retry", "breaker"):
        table.add_column(col)
    for r in rows:
        retry = r["retry"]["max_attempts"] if r["retry"] else 1
        br = r["breaker"]
        table.add_row(
            r["name"], f"{r['plugin']} {r['version']}", ", ".join(r["requires"]) or "-",
            ", ".join(r["provides"]) or "-", f"${r['cost']:g}", f"{retry} attempts",
            f"{br['failure_threshold']} fails / {br['reset_after']:g}s" if br else "-",
        )
    console.print(table)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List installed plugins: distribution, version, stations, and any that failed to load."""
    host = get_host(ctx)
    rows = [p.as_dict() for p in host.plugins]
    if as_json:
        click.echo(json.dumps({"plugin_api": PLUGIN_API_VERSION, "plugins": rows}, indent=2))
        return
    if not rows:
        console.print("no plugin installed")
        return
    table = Table(title=f"plugins (plugin API {PLUGIN_API_VERSION})")
    for col in ("distribution", "version", "status", "stations", "api", "error"):
        table.add_column(col)
    for r in rows:
        api = r["api"] or "[yellow]undeclared[/yellow]"
        table.add_row(r["distribution"], r["version"], r["status"], ", ".join(r["stations"]) or "-", api,
                      r["error"] or "")
    console.print(table)


from waystation.cli.breaker import breaker  # noqa: E402  (light: imports redis on use)
from waystation.cli.new_plugin import new_plugin  # noqa: E402
from waystation.cli.run import report_command, run_command  # noqa: E402  (light: imports on use)
from waystation.cli.worker import enqueue_command, queue_command, worker_command  # noqa: E402  (light)

cli.add_command(run_command)
cli.add_command(report_command)
cli.add_command(new_plugin)
cli.add_command(breaker)
cli.add_command(enqueue_command)
cli.add_command(worker_command)
cli.add_command(queue_command)


def main() -> None:
    """Entry point of the ``waystation`` script."""
    cli(prog_name="waystation")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
