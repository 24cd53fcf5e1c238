"""``waystation stations [NAME]``: a station as data, and one station shown in full."""

from __future__ import annotations

import inspect
import json
from typing import Any

import click

from waystation.cli import output
from waystation.cli.errors import UsageProblem
from waystation.plugins import PluginHost, StationInfo


def _policy(p: Any) -> Any:
    return None if p is None else p.model_dump()


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("pydantic.types.", "")


def station_row(info: StationInfo) -> dict[str, Any]:
    """One station as data (``stations --json``)."""
    c = info.cls
    return {
        "name": c.name, "plugin": info.plugin, "version": info.version,
        "requires": list(c.requires), "optional": list(c.optional),
        "provides": {k: _type_name(v) for k, v in c.provides.items()},
        "cost": c.cost, "paid": c.is_paid(), "timeout": c.timeout, "retry": _policy(c.retry),
        "breaker": _policy(c.breaker), "rate_limit": _policy(c.rate_limit), "in_doubt": c.in_doubt,
        "gate": bool(getattr(c, "gate", False)),
        "doc": (c.__doc__ or "").strip().split("\n")[0],
    }


def _env_name(name: str, prefix: str, alias: Any) -> str:
    """The environment variable pydantic-settings reads for a field (an alias replaces the prefix)."""
    if isinstance(alias, str):
        return alias.upper()
    choices = getattr(alias, "choices", None)
    if choices:
        names = [c for c in choices if isinstance(c, str)]
        if names:
            return names[0].upper()
    return f"{prefix}{name}".upper()


def settings_rows(info: StationInfo) -> list[dict[str, Any]]:
    """Each setting of the station: name, type, default, whether required/secret, env variable."""
    model = info.cls.Settings
    prefix = str(model.model_config.get("env_prefix") or "")
    rows = []
    for name, field in model.model_fields.items():
        env = _env_name(name, prefix, field.validation_alias or field.alias)
        ann = field.annotation
        tname = _type_name(ann) if ann is not None else "any"
        secret = "Secret" in tname
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        if secret or default is None:
            shown = None
        else:
            shown = default if isinstance(default, str | int | float | bool) else str(default)
        rows.append({"setting": name, "type": tname, "required": field.is_required(), "secret": secret,
                     "default": shown, "env": env, "description": field.description or ""})
    return rows


def station_detail(info: StationInfo) -> dict[str, Any]:
    """Everything ``stations NAME`` shows, as data."""
    row = station_row(info)
    row["doc"] = inspect.cleandoc(info.cls.__doc__ or "")
    row["settings"] = settings_rows(info)
    return row


def describe_station(info: StationInfo, fmt: str) -> None:
    """Print one station in full (``fmt`` json: as data)."""
    d = station_detail(info)
    if fmt == "json":
        click.echo(json.dumps(d, indent=2, default=str))
        return
    echo = click.echo
    echo(f"{d['name']}  ({d['plugin']} {d['version']})".rstrip())
    if d["doc"]:
        echo("")
        for line in d["doc"].splitlines():
            echo(f"  {line}".rstrip())
    echo("")
    echo(f"requires:  {', '.join(d['requires']) or '-'}")
    echo(f"optional:  {', '.join(d['optional']) or '-'}")
    echo("provides:")
    for k, v in d["provides"].items():
        echo(f"  {k}: {v}")
    if not d["provides"]:
        echo("  -")
    price = f"${d['cost']:g} per call" + (" (paid)" if d["paid"] else "")
    echo(f"price:     {price}")
    echo("policies:")
    timeout = "none" if d["timeout"] is None else f"{d['timeout']:g}s"
    echo(f"  timeout:    {timeout}")
    echo(f"  retry:      {output.text(d['retry'])}")
    echo(f"  breaker:    {output.text(d['breaker']) if d['breaker'] else 'none'}")
    echo(f"  rate_limit: {output.text(d['rate_limit']) if d['rate_limit'] else 'none'}")
    echo(f"  in_doubt:   {d['in_doubt']}")
    echo(f"  gate:       {'yes' if d['gate'] else 'no'}")
    echo("settings (route `settings:` or the environment variable):")
    if not d["settings"]:
        echo("  none")
    for s in d["settings"]:
        flags = ", ".join(x for x in ("required" if s["required"] else "", "secret" if s["secret"] else "") if x)
        default = "" if s["default"] is None else f" = {s['default']!r}"
        echo(f"  {s['setting']}: {s['type']}{default}  env {s['env']}" + (f"  ({flags})" if flags else ""))
        if s["description"]:
            echo(f"      {s['description']}")


def unknown_station(host: PluginHost, name: str) -> UsageProblem:
    """The error for ``stations NAME`` with a name that is not installed."""
    found = host.suggestion(name)
    if found is not None and not found.installed and found.name == name:
        return UsageProblem(f"station {name!r} is not installed", found.hint(name))
    hint = found.hint(name) if found else "`waystation stations` lists the installed ones"
    return UsageProblem(f"no station {name!r} is installed", hint)
