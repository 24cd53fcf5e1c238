"""``waystation new-plugin NAME``: create a station plugin package from the shipped template.

The template lives in ``waystation/templates/plugin`` (inside the wheel). Files end in ``.tmpl``
and ``{{placeholder}}`` marks are filled in; a path part ``__module__`` becomes the package name.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import re
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

import click

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")


@dataclass(frozen=True)
class PluginNames:
    """Every name derived from the plugin's short name (``acme-phone``)."""

    name: str
    dist: str
    module: str
    station_class: str
    settings_class: str
    env_prefix: str
    field: str
    core_version: str

    @classmethod
    def from_name(cls, raw: str) -> PluginNames:
        """Derive the names; raises ``ValueError`` on a name that is not ``[a-z][a-z0-9-]*``."""
        name = raw.strip().lower()
        if name.startswith("waystation-"):
            name = name[len("waystation-"):]
        if not _NAME.match(name):
            raise ValueError(f"invalid plugin name {raw!r}: use lower-case letters, digits and dashes, "
                             "starting with a letter (e.g. 'acme-phone')")
        name = name.replace("_", "-")
        snake = name.replace("-", "_")
        camel = "".join(part.capitalize() for part in name.split("-"))
        try:
            version = importlib.metadata.version("waystation")
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
            version = "0.1"
        core = ".".join(version.split(".")[:2])
        return cls(name=name, dist=f"waystation-{name}", module=f"waystation_{snake}",
                   station_class=f"{camel}Station", settings_class=f"{camel}Settings",
                   env_prefix=f"WAYSTATION_{snake.upper()}_", field=f"{snake}_status", core_version=core)

    def values(self) -> dict[str, str]:
        """Placeholder → value."""
        return {k: str(getattr(self, k)) for k in self.__dataclass_fields__}


def template_root() -> Traversable:
    """The plugin template shipped with waystation."""
    return importlib.resources.files("waystation").joinpath("templates", "plugin")


def render(text: str, values: dict[str, str]) -> str:
    """Fill ``{{placeholder}}`` marks; an unknown placeholder is an error."""
    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in values:
            raise KeyError(f"unknown template placeholder {{{{{key}}}}}")
        return values[key]

    return _PLACEHOLDER.sub(sub, text)


def _walk(node: Traversable, rel: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Traversable]]:
    out: list[tuple[tuple[str, ...], Traversable]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name == "__pycache__":
            continue
        if child.is_dir():
            out.extend(_walk(child, (*rel, child.name)))
        elif child.name.endswith(".tmpl"):
            out.append(((*rel, child.name), child))
    return out


def create_plugin(name: str, parent: Path) -> Path:
    """Write the plugin ``waystation-NAME`` under ``parent`` and return its folder.

    Raises ``FileExistsError`` if the folder exists and is not empty.
    """
    names = PluginNames.from_name(name)
    values = names.values()
    target = parent / names.dist
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} already exists and is not empty")
    files = _walk(template_root())
    if not files:  # pragma: no cover - a broken installation
        raise FileNotFoundError("the plugin template is missing from this waystation installation")
    for rel, src in files:
        parts = [p.replace("__module__", names.module) for p in rel]
        parts[-1] = parts[-1][: -len(".tmpl")]
        dest = target.joinpath(*parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(render(src.read_text(encoding="utf-8"), values), encoding="utf-8")
    return target


@click.command("new-plugin")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Parent folder of the new plugin (default: ./plugins if it exists, else .).")
def new_plugin(name: str, directory: Path | None) -> None:
    """Create a station plugin package waystation-NAME from the template.

    \b
    It has: pyproject.toml (entry point, test extra), src/waystation_NAME/ (plugin module
    declaring WAYSTATION_API, a station with a settings model), README.md, and tests using the
    harness (StationTests, fake_vendor). Then:
      cd waystation-NAME && pip install -e ".[test]" && pytest
    """
    if directory is None:
        directory = Path("plugins") if Path("plugins").is_dir() else Path(".")
    try:
        target = create_plugin(name, directory)
    except (ValueError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from None
    names = PluginNames.from_name(name)
    click.echo(f"created {target}/ ({names.dist}: station {names.station_class}, package {names.module})")
    click.echo(f"next: cd {target} && pip install -e \".[test]\" && pytest")
