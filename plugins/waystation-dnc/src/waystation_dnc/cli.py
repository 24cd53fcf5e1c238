"""``waystation dnc ...``: load registry files into the local store and show its state."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path

import click
from waystation.cli import output
from waystation.cli.errors import EXIT_USAGE, print_error, warn

from waystation_dnc.lists import LISTS

_STATUS_COLUMNS = [
    output.Column("list", "list", priority=100, name=True),
    output.Column("numbers", "numbers", priority=90, justify="right"),
    output.Column("area_codes", "area codes", priority=40),
    output.Column("oldest", "oldest data", priority=60),
    output.Column("age", "age (days)", priority=80),
]

_STORE_HELP = "The SQLite store (default: $WAYSTATION_DNC_STORE or .waystation/dnc.sqlite)."


def _store_path(store: str | None) -> Path:
    return Path(store or os.environ.get("WAYSTATION_DNC_STORE") or ".waystation/dnc.sqlite")


def _area_codes(codes: list[int], limit: int = 12) -> str:
    shown = ", ".join(str(c) for c in codes[:limit])
    return shown + (f" ... (+{len(codes) - limit})" if len(codes) > limit else "") if codes else "-"


@click.group()
def dnc() -> None:
    """The local Do-Not-Call store: import FTC registry files, internal and litigator lists."""


@dnc.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--list", "list_name", type=click.Choice(LISTS), default="federal", show_default=True,
              help="The list the numbers belong to.")
@click.option("--changes", is_flag=True, help="The files are change lists (lines: number, A|D, date).")
@click.option("--action", type=click.Choice(["add", "delete"]), default=None,
              help="With --changes: the action of lines that carry no A/D indicator.")
@click.option("--as-of", "as_of", default=None, metavar="DATE",
              help="Date of the data (ISO, e.g. 2026-11-27); default: each file's modification time.")
@click.option("--replace", is_flag=True, help="Empty the whole list before importing the first file.")
@click.option("--force", is_flag=True, help="Import files even when this exact file was imported before.")
@click.option("--store", default=None, type=click.Path(dir_okay=False), help=_STORE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def import_(files: tuple[str, ...], list_name: str, changes: bool, action: str | None, as_of: str | None,
            replace: bool, force: bool, store: str | None, as_json: bool) -> None:
    """Import FILES (plain text, .gz or .zip; one number or 'areacode,number' per line).

    A federal full list replaces the store's numbers of the area codes it contains; a change list
    (--changes) adds and deletes numbers; internal and litigator files add to their list.
    Memory stays bounded whatever the file size.
    """
    from waystation_dnc.store import DNCFileError, DNCStore, parse_time

    when: datetime | None = None
    if as_of:
        try:
            when = parse_time(as_of)
        except ValueError:
            raise click.BadParameter(f"not an ISO date: {as_of!r}", param_hint="--as-of") from None
    path = _store_path(store)
    results = []
    failed = False
    with DNCStore(path) as st:
        for i, f in enumerate(files):
            try:
                res = st.import_file(f, list_name, changes=changes, action=action, as_of=when,  # type: ignore[arg-type]
                                     replace=replace and i == 0, force=force)
            except DNCFileError as exc:
                print_error(str(exc))
                failed = True
                continue
            results.append(res)
            if as_json:
                continue
            if res.skipped:
                click.echo(f"{f}: already imported into {list_name} (use --force to import it again)")
                continue
            label = "change list" if changes else "full list" if list_name == "federal" else "list"
            click.echo(
                f"{f}: {label} -> {list_name}: {res.lines} lines, +{res.added} added, "
                f"-{res.deleted + res.replaced} removed, {res.rejected} rejected; area codes "
                f"{_area_codes(res.area_codes)}")
            for ex in res.rejected_examples:
                click.echo(f"  rejected {ex}", err=True)
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in results], indent=2))
    if failed:
        sys.exit(EXIT_USAGE)


@dnc.command()
@click.option("--store", default=None, type=click.Path(dir_okay=False), help=_STORE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(store: str | None, as_json: bool) -> None:
    """Show what the store holds: numbers and area codes per list and the age of the data.

    Warns when some data is older than 31 days (the FTC's limit for scrubbing).
    """
    from waystation_dnc.store import MAX_AGE_DAYS, DNCStore

    path = _store_path(store)
    if not path.exists():
        print_error(f"no DNC store at {path}", "run 'waystation dnc import' first (or pass --store)")
        sys.exit(EXIT_USAGE)
    with DNCStore(path) as st:
        lists = st.status()
        recent = st.imports(5)
    if as_json:
        click.echo(json.dumps({"store": str(path), "max_age_days": MAX_AGE_DAYS,
                               "lists": {k: {**v.__dict__, "stale": v.stale} for k, v in lists.items()},
                               "imports": recent}, indent=2))
    else:
        rows = [{"list": st_.list_name, "numbers": f"{st_.numbers:,}",
                 "area_codes": f"{len(st_.area_codes)}: {_area_codes(st_.area_codes)}",
                 "oldest": st_.oldest or "-",
                 "age": ("-" if st_.age_days is None else f"{st_.age_days:.1f}") + (" (stale)" if st_.stale else "")}
                for st_ in lists.values()]
        output.emit(rows, _STATUS_COLUMNS, output.resolve_format(None), title=f"DNC store {path}",
                    empty="the store holds no list yet")
    for s in lists.values():
        if s.stale and not as_json:
            warn(f"{s.list_name} data is {s.age_days:.0f} days old (oldest {s.oldest}); the FTC requires "
                 f"scrubbing against data at most {MAX_AGE_DAYS} days old", "download and import it again")


@dnc.command()
@click.argument("numbers", nargs=-1, required=True)
@click.option("--store", default=None, type=click.Path(dir_okay=False), help=_STORE_HELP)
def check(numbers: tuple[str, ...], store: str | None) -> None:
    """Print which lists hold each of NUMBERS."""
    from waystation_dnc.store import DNCStore, area_code, normalize_number

    path = _store_path(store)
    if not path.exists():
        print_error(f"no DNC store at {path}", "run 'waystation dnc import' first (or pass --store)")
        sys.exit(EXIT_USAGE)
    with DNCStore(path) as st:
        loaded = st.loaded_area_codes("federal")
        for raw in numbers:
            n = normalize_number(raw)
            if n is None:
                click.echo(f"{raw}: not a 10-digit US number")
                continue
            found = st.lookup(n)
            note = "" if area_code(n) in loaded else " (federal list of this area code not loaded)"
            click.echo(f"{raw}: {', '.join(found) if found else 'not listed'}{note}")
