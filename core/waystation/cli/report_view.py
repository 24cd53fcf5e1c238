"""A run's report on the terminal (a table that fits) or in a pipe (plain, one step a line)."""

from __future__ import annotations

from typing import Any

import click

from waystation.cli import output
from waystation.report import Report, _money, _pct, _secs  # one formatting of money, latency, rates


def report_columns(show_station: bool) -> list[output.Column]:
    """The columns of the per-step table (most useful kept longest on a narrow terminal)."""
    cols = [output.Column("step", "step", priority=100, name=True)]
    if show_station:
        cols.append(output.Column("station", "station", priority=95, name=True))
    return [
        *cols,
        output.Column("runs", "runs", priority=90, justify="right"),
        output.Column("ok", "ok", priority=85, justify="right"),
        output.Column("failed", "failed", priority=80, justify="right"),
        output.Column("skipped", "skipped", priority=40),
        output.Column("cost", "cost", priority=75, justify="right"),
        output.Column("hit_rate", "hit rate", priority=70, justify="right"),
        output.Column("cost_per_hit", "cost/hit", priority=30, justify="right"),
        output.Column("p50", "p50", priority=20, justify="right"),
        output.Column("p95", "p95", priority=25, justify="right"),
        output.Column("in_doubt", "in doubt", priority=50, justify="right"),
        output.Column("cached", "cached", priority=35, justify="right"),
    ]


def print_report(report: Report, fmt: str | None = None, *, more: str = "--format plain shows all") -> None:
    """Print ``report``: its title, one row per step, and the lead counts."""
    fmt = fmt or output.resolve_format(None)
    if fmt == "json":
        import json

        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    show_station = any(s.station != s.step for s in report.stations)
    rows: list[dict[str, Any]] = [{
        "step": s.step, "station": s.station, "runs": s.runs, "ok": s.succeeded, "failed": s.failed,
        "skipped": ", ".join(f"{k} {v}" for k, v in s.skipped.items()) or "-",
        "cost": _money(s.cost), "hit_rate": _pct(s.hit_rate), "cost_per_hit": _money(s.cost_per_hit),
        "p50": _secs(s.latency_p50), "p95": _secs(s.latency_p95), "in_doubt": s.in_doubt,
        "cached": s.cache_hits,
    } for s in report.stations]
    title = f"run {report.run_id} — route {report.route}" + ("" if report.complete else " (incomplete)")
    if fmt == "tsv":  # the table alone, for other tools
        output.emit(rows, report_columns(show_station), fmt)
        return
    if fmt != "table":
        click.echo(title)
    output.emit(rows, report_columns(show_station), fmt, title=title, more=more)
    leads = ", ".join(f"{k} {v}" for k, v in report.leads.items() if v) or "none"
    budget = f" of {_money(report.budget_total)}" if report.budget_total is not None else ""
    elapsed = f"; {report.elapsed:.1f} s" if report.elapsed is not None and report.source == "run" else ""
    click.echo(f"leads: {report.lead_total} ({leads}); total cost {_money(report.total_cost)}{budget}{elapsed}")
    if report.causes:  # why leads stopped, were held or failed: gate, budget, fault
        click.echo("by cause: " + ", ".join(f"{k} {v}" for k, v in report.causes.items()))
    if report.overrun:
        click.echo(f"overrun: {_money(report.overrun)} booked above what was reserved (a station cost more "
                   "than it declared)")
    if report.dial:  # dial verdicts as exported (docs/compliance.md)
        verdicts = ", ".join(f"{k} {v}" for k, v in report.dial.get("verdicts", {}).items()) or "none"
        reasons = ", ".join(f"{k} {v}" for k, v in report.dial.get("reasons", {}).items()) or "-"
        stale = report.dial.get("stale") or 0
        click.echo(f"dial verdicts: {verdicts}; reasons: {reasons}"
                   + (f"; {stale} on expired evidence (refused)" if stale else ""))
