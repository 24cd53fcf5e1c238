"""Listings as people and pipes want them (the conventions of ``gh``, ``llm`` and ``datasette``).

- On a terminal: a rich table that fits the terminal. Columns are dropped by priority (the least
  useful first) until the rest fit; long text folds inside its cell; *name* columns (station,
  plugin, run id) are never cut, folded or wrapped.
- When stdout is not a terminal, or with ``--format plain``: plain text, one record a line, columns
  separated by two spaces and aligned, nothing cut (so ``waystation stations | grep Income`` works).
- ``--format tsv``: a header line, then one tab-separated record a line (tabs and newlines in
  values become spaces).
- ``--format json`` / ``--json``: a JSON array with one record a line.

Colour only on a terminal and never when ``NO_COLOR`` is set. Text from outside (a station's
docstring, a lead's value, an error message) is always printed as text: never read as rich markup.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from waystation.cli.errors import use_color

if TYPE_CHECKING:
    from waystation.plan import Plan

#: Separator of ``plain`` columns.
GAP = "  "


@dataclass(frozen=True)
class Column:
    """One column of a listing.

    ``priority``: higher is kept longer when the terminal is narrow (the first column should have
    the highest). ``name``: a name that is never cut (no wrap, no ellipsis, no fold).
    """

    key: str
    header: str
    priority: int = 0
    name: bool = False
    justify: str = "left"


def is_terminal(stream: Any = None) -> bool:
    """Whether ``stream`` (default stdout) is a terminal."""
    stream = stream or sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def resolve_format(fmt: str | None, as_json: bool = False) -> str:
    """The format to print in: ``--json`` wins, then ``--format``, then table on a terminal."""
    if as_json:
        return "json"
    if fmt:
        return fmt
    return "table" if is_terminal() else "plain"


def terminal_width() -> int:
    """The width of the terminal stdout is on (``COLUMNS`` wins; 80 when unknown)."""
    env = os.environ.get("COLUMNS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return shutil.get_terminal_size((80, 24)).columns


def text(value: Any) -> str:
    """A cell value as one line of text."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(text(v) for v in value) or "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={text(v)}" for k, v in value.items()) or "-"
    s = str(value)
    return " ".join(s.split()) if ("\n" in s or "\t" in s or "\r" in s) else s


def console(*, stderr: bool = False, width: int | None = None) -> Any:
    """A rich console for a terminal: colour per ``NO_COLOR``, no highlighting, markup off."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    color = use_color(stream)
    return Console(file=stream, highlight=False, markup=False, emoji=False, soft_wrap=False,
                   no_color=not color, color_system="auto" if color else None, width=width)


def _fit(columns: Sequence[Column], cells: list[list[str]], width: int) -> list[int]:
    """Indexes of the columns to keep so that the table fits ``width`` (dropping low priority)."""
    keep = list(range(len(columns)))

    def min_width(i: int) -> int:
        longest = max([len(columns[i].header)] + [len(r[i]) for r in cells])
        if columns[i].name:
            return longest
        return min(longest, max(len(columns[i].header), 10))  # folded inside the cell below that

    def needed(idx: list[int]) -> int:
        return sum(min_width(i) for i in idx) + 3 * len(idx) + 1  # borders and padding

    while len(keep) > 1 and needed(keep) > width:
        drop = min(keep[1:], key=lambda i: (columns[i].priority, -i))
        keep.remove(drop)
    return keep


def emit(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], fmt: str, *, title: str | None = None,
         json_rows: Sequence[Any] | None = None, empty: str | None = None,
         more: str = "--format plain shows all") -> None:
    """Print ``rows`` in ``fmt`` (``table``, ``plain``, ``tsv``, ``json``).

    ``json_rows`` (default ``rows``) is what ``json`` prints; ``empty`` is said on stderr when there
    is no row in a human format (stdout stays empty, so a pipe gets nothing); ``more`` tells how to
    see the columns a narrow terminal hides.
    """
    if fmt == "json":
        items = list(json_rows if json_rows is not None else rows)
        body = ",\n".join(json.dumps(r, default=str, ensure_ascii=False) for r in items)
        click.echo(f"[\n{body}\n]" if items else "[]")
        return
    if not rows:
        if empty:
            click.echo(empty, err=True)
        return
    cells = [[text(r.get(c.key)) for c in columns] for r in rows]
    if fmt == "tsv":
        click.echo("\t".join(c.header for c in columns))
        for row in cells:
            click.echo("\t".join(v.replace("\t", " ") for v in row))
        return
    if fmt == "plain":
        widths = [max(len(c.header), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        lines = [[c.header for c in columns], *cells]
        for row in lines:
            click.echo(GAP.join(v.ljust(widths[i]) if i < len(row) - 1 else v
                                for i, v in enumerate(row)).rstrip())
        return
    width = terminal_width()
    keep = _fit(columns, cells, width)
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", expand=False)
    for i in keep:
        c = columns[i]
        if c.name:
            longest = max(len(c.header), *(len(r[i]) for r in cells))
            table.add_column(c.header, no_wrap=True, min_width=longest, overflow="ignore", justify=c.justify)  # type: ignore[arg-type]
        else:
            table.add_column(c.header, overflow="fold", justify=c.justify)  # type: ignore[arg-type]
    for row in cells:
        table.add_row(*(Text(row[i]) for i in keep))
    out = console(width=width)
    out.print(table)
    dropped = [columns[i].header for i in range(len(columns)) if i not in keep]
    if dropped:
        out.print(Text(f"(not shown at this width: {', '.join(dropped)}" + (f"; {more})" if more else ")"),
                       style="dim"))


def say(message: str) -> None:
    """A line for people on stdout, never read as markup."""
    click.echo(message)


def plan_lines(plan: Plan, source: str) -> list[str]:
    """A compiled route as ``waystation check`` and ``run --dry-run`` print it: one line naming the
    route, its size and budget, then one indented line per level."""
    budget = "none" if plan.budget is None else f"${plan.budget:.4f} per lead"
    head = f"route {plan.name} ({source}): {len(plan.steps)} steps, {len(plan.levels)} levels, budget {budget}"
    return [head, *(f"  {line}" for line in plan.level_lines())]
