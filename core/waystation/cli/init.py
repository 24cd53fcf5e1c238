"""``waystation init [DIR]``: a starter project, so a user who installed from the index can run the
quickstart without the source tree.

It writes the shipped routes (``routes/``), the example leads and the Do-Not-Call sample
(``examples/``) — both ship inside the wheel as package data under ``waystation/data/`` — a
``.env.example`` listing every key and required setting of the installed stations with its
environment variable, a ``.gitignore`` and a short README. Nothing is overwritten: a file that
exists is kept (and said so) unless ``--force``.
"""

from __future__ import annotations

import importlib.resources
from importlib.resources.abc import Traversable
from pathlib import Path

import click

from waystation.cli.errors import UsageProblem
from waystation.plugins import PluginHost

_GITIGNORE = ".env\n.waystation/\nout/\n"


def data_root() -> Traversable:
    """The shipped routes and examples: ``waystation/data`` in a wheel, the repository in a checkout."""
    packaged = importlib.resources.files("waystation").joinpath("data")
    if packaged.joinpath("routes").is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[3]  # core/waystation/cli/init.py -> the repository
    if (checkout / "routes").is_dir() and (checkout / "examples").is_dir():
        return checkout
    raise UsageProblem("the shipped routes and examples are missing from this installation",
                       "reinstall waystation: pip install --force-reinstall waystation")


def _files(node: Traversable, rel: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Traversable]]:
    out: list[tuple[tuple[str, ...], Traversable]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name in ("__pycache__",) or child.name.startswith("."):
            continue
        if child.is_dir():
            out.extend(_files(child, (*rel, child.name)))
        else:
            out.append(((*rel, child.name), child))
    return out


def env_example(host: PluginHost) -> str:
    """``.env.example``: per installed station, every secret or required setting's variable."""
    from waystation.cli.describe import settings_rows

    lines = ["# Keys and required settings of the installed stations. Copy to .env and fill in;",
             "# waystation reads them from the environment (e.g. `set -a; . ./.env; set +a`).", ""]
    seen: set[str] = set()
    for name, info in sorted(host.stations.items()):
        wanted = [s for s in settings_rows(info) if (s["secret"] or s["required"]) and s["env"] not in seen]
        if not wanted:
            continue
        lines.append(f"# {name} ({info.plugin})")
        for s in wanted:
            seen.add(s["env"])
            if s["description"]:
                lines.append(f"# {s['description']}")
            lines.append(f"{s['env']}=")
        lines.append("")
    if len(lines) == 3:
        lines.append("# (no installed station needs a key)")
    return "\n".join(lines).rstrip() + "\n"


def _readme(names: list[str]) -> str:
    routes = "\n".join(f"- `routes/{n}`" for n in names)
    return f"""# waystation project

Made by `waystation init`. Run the offline quickstart (no key, no network):

```sh
waystation run routes/free-only.yaml examples/leads.csv -o out/enriched.csv
```

Routes:

{routes}

`waystation check ROUTE` compiles a route against the installed stations; `waystation stations`
lists them; keys for paid stations go in `.env` (see `.env.example`).
"""


def init_project(target: Path, host: PluginHost, *, force: bool = False) -> tuple[list[Path], list[Path]]:
    """Write the starter project into ``target``; returns (written, kept) files."""
    root = data_root()
    plan: list[tuple[Path, bytes]] = []
    routes: list[str] = []
    for top in ("routes", "examples"):
        for rel, src in _files(root.joinpath(top)):
            plan.append((target.joinpath(top, *rel), src.read_bytes()))
            if top == "routes" and rel[-1].endswith((".yaml", ".yml")):
                routes.append("/".join(rel))
    plan.append((target / ".env.example", env_example(host).encode()))
    plan.append((target / ".gitignore", _GITIGNORE.encode()))
    plan.append((target / "README.md", _readme(routes).encode()))
    written: list[Path] = []
    kept: list[Path] = []
    for path, data in plan:
        if path.exists() and not force:
            kept.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written, kept


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
@click.pass_context
def init_command(ctx: click.Context, directory: Path, force: bool) -> None:
    """Write a starter project into DIRECTORY (default: here): the shipped routes, the example
    leads and Do-Not-Call sample, and a .env.example with the keys the installed stations need.

    \b
    Then:
      cd DIRECTORY && waystation run routes/free-only.yaml examples/leads.csv -o out/enriched.csv
    """
    from waystation.cli.context import get_host

    if directory.exists() and not directory.is_dir():
        raise UsageProblem(f"{directory} exists and is not a directory")
    written, kept = init_project(directory, get_host(ctx), force=force)
    click.echo(f"wrote {len(written)} file(s) into {directory}/" + (f"; kept {len(kept)} that exist "
               "(--force overwrites them)" if kept else ""))
    where = "" if directory == Path(".") else f"cd {directory} && "
    click.echo(f"next: {where}waystation run routes/free-only.yaml examples/leads.csv -o out/enriched.csv")
