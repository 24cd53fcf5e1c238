"""What every command shares: the consoles and the plugin host of this invocation.

Sub-command modules import these from here (never from :mod:`waystation.cli.main`, which imports
them): the CLI's modules form no import cycle.
"""

from __future__ import annotations

import os
from typing import Any

import click
from rich.console import Console

from waystation.cli.errors import UsageProblem
from waystation.errors import DuplicateStationError, PluginError
from waystation.plugins import PluginHost

__all__ = ["console", "err_console", "get_host", "state"]

# Kept for commands that print through rich (the run report, the progress bar): markup is off so
# that text from a lead or a plugin is never read as markup; colour follows NO_COLOR.
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

#: Set by the root options; read by :func:`waystation.cli.main.main` to decide whether to print
#: tracebacks.
state: dict[str, Any] = {"debug": bool(os.environ.get("WAYSTATION_DEBUG"))}


def get_host(ctx: click.Context) -> PluginHost:
    """The plugin host for this invocation (plugins loaded once, on first use)."""
    obj = ctx.ensure_object(dict)
    host = obj.get("host")
    if host is None:
        strict = obj.get("strict_plugins")
        try:
            host = PluginHost.discover(strict=strict)
        except (PluginError, DuplicateStationError) as exc:
            raise UsageProblem(f"plugin error: {exc}",
                               "see `waystation plugins`; uninstall or fix the plugin, or leave out "
                               "--strict-plugins") from None
        obj["host"] = host
    assert isinstance(host, PluginHost)
    return host
