"""``waystation suppress add|remove|list|import|check``: the suppression ledger (opt-outs, erasures)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

if TYPE_CHECKING:
    from waystation.suppress.ledger import SuppressionLedger

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

_LEDGER_HELP = "The ledger file (default: $WAYSTATION_SUPPRESS_LEDGER or .waystation/suppress.sqlite)."
_REASON_HELP = "Why: opt-out (asked not to be contacted), erasure (asked to be forgotten), or your own word."


def _open(ledger: str | None, create: bool = True) -> SuppressionLedger:
    from waystation.suppress.ledger import LedgerError, SuppressionLedger

    try:
        return SuppressionLedger(ledger, create=create)
    except LedgerError as exc:
        err_console.print(f"[red]error[/red] {exc}")
        sys.exit(1)


@click.group()
def suppress() -> None:
    """The suppression ledger: phones and e-mails that every route refuses before any paid step.

    Values are kept as keyed hashes (HMAC-SHA256 with a local secret), never as text.
    """


@suppress.command("add")
@click.argument("values", nargs=-1, required=True)
@click.option("--reason", default="opt-out", show_default=True, help=_REASON_HELP)
@click.option("--date", "requested", default=None, metavar="DATE", help="Date of the request (ISO; default: now).")
@click.option("--ledger", default=None, type=click.Path(dir_okay=False), help=_LEDGER_HELP)
def add(values: tuple[str, ...], reason: str, requested: str | None, ledger: str | None) -> None:
    """Suppress VALUES (phone numbers or e-mail addresses)."""
    bad = 0
    with _open(ledger) as led:
        for v in values:
            try:
                entry = led.add(v, reason=reason, requested_at=requested)
            except ValueError:
                raise click.BadParameter(f"not an ISO date: {requested!r}", param_hint="--date") from None
            if entry is None:
                err_console.print(f"[yellow]skipped[/yellow] value {values.index(v) + 1}: not a phone number "
                                  "or an e-mail address")
                bad += 1
                continue
            console.print(f"suppressed {entry.kind} {entry.hash[:16]}… ({entry.reason}, {entry.requested_at[:10]})")
    if bad:
        sys.exit(1)


@suppress.command("remove")
@click.argument("values", nargs=-1, required=True)
@click.option("--ledger", default=None, type=click.Path(dir_okay=False), help=_LEDGER_HELP)
def remove(values: tuple[str, ...], ledger: str | None) -> None:
    """Remove VALUES (phone numbers, e-mail addresses, or hashes as 'list' shows them)."""
    missing = 0
    with _open(ledger, create=False) as led:
        for i, v in enumerate(values, 1):
            if led.remove(v):
                console.print(f"removed value {i}")
            else:
                err_console.print(f"[yellow]not found[/yellow] value {i}")
                missing += 1
    if missing:
        sys.exit(1)


@suppress.command("list")
@click.option("--ledger", default=None, type=click.Path(dir_okay=False), help=_LEDGER_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
def list_(ledger: str | None, as_json: bool) -> None:
    """List the entries: hash, kind, reason, dates (no readable personal data)."""
    from waystation.suppress.ledger import ledger_path

    if not ledger_path(ledger).exists():
        if as_json:
            click.echo("[]")
        else:
            console.print(f"no suppression ledger at {ledger_path(ledger)}")
        return
    with _open(ledger, create=False) as led:
        entries = list(led.entries())
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in entries], indent=2))
        return
    from rich.table import Table

    table = Table(title=f"suppression ledger ({len(entries)} entries)")
    for col in ("hash", "kind", "reason", "requested", "added"):
        table.add_column(col)
    for e in entries:
        table.add_row(e.hash, e.kind, e.reason, e.requested_at[:10], e.added_at[:10])
    console.print(table)


@suppress.command("check")
@click.argument("values", nargs=-1, required=True)
@click.option("--ledger", default=None, type=click.Path(dir_okay=False), help=_LEDGER_HELP)
def check(values: tuple[str, ...], ledger: str | None) -> None:
    """Say whether each of VALUES is suppressed (exit 1 when any is)."""
    from waystation.suppress.ledger import ledger_path

    hits = 0
    if not ledger_path(ledger).exists():
        for i, _ in enumerate(values, 1):
            console.print(f"value {i}: not suppressed (no ledger)")
        return
    with _open(ledger, create=False) as led:
        for i, v in enumerate(values, 1):
            entry = led.lookup(v)
            if entry is None:
                console.print(f"value {i}: not suppressed")
            else:
                hits += 1
                console.print(f"value {i}: suppressed ({entry.reason}, {entry.requested_at[:10]})")
    if hits:
        sys.exit(1)


@suppress.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--reason", default="opt-out", show_default=True, help=_REASON_HELP)
@click.option("--ledger", default=None, type=click.Path(dir_okay=False), help=_LEDGER_HELP)
def import_(file: str, reason: str, ledger: str | None) -> None:
    """Import FILE: a text file with one phone or e-mail per line, or a CSV with a header naming
    ``phone`` and/or ``email`` columns (and optionally ``date`` and ``reason``)."""
    path = Path(file)
    added = skipped = 0
    with _open(ledger) as led, open(path, encoding="utf-8-sig", newline="") as fh:
        first = fh.readline()
        fh.seek(0)
        header = [c.strip().lower() for c in next(csv.reader([first]))] if first else []
        rows: list[tuple[int, str, str | None, str]]
        if {"phone", "email"} & set(header):
            rows = []
            for n, rec in enumerate(csv.DictReader(fh), 2):
                low = {str(k).strip().lower(): (v or "").strip() for k, v in rec.items() if k}
                for col in ("phone", "email"):
                    if low.get(col):
                        rows.append((n, low[col], low.get("date") or None, low.get("reason") or reason))
        else:
            rows = [(n, line.strip(), None, reason) for n, line in enumerate(fh, 1)
                    if line.strip() and not line.lstrip().startswith("#")]
        for n, value, when, why in rows:
            try:
                entry = led.add(value, reason=why, requested_at=when)
            except ValueError:
                entry = None
            if entry is None:
                skipped += 1
                err_console.print(f"[yellow]skipped[/yellow] {path.name}:{n}: not a phone number or an e-mail "
                                  "address (or a bad date)")
            else:
                added += 1
    console.print(f"{path.name}: {added} suppressed, {skipped} skipped")
    if skipped and not added:
        sys.exit(1)
