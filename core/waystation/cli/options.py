"""Options shared by several commands, spelled one way everywhere (see "Names" in the README).

- :func:`redis_url_option`: ``--redis-url URL`` (env ``WAYSTATION_REDIS_URL``); the old spelling
  ``--redis`` still works for one release and prints a deprecation warning.
- :func:`checkpoint_option`: ``--checkpoint URL`` (env ``WAYSTATION_CHECKPOINT``), validated
  before anything runs (:func:`waystation.stores.check_store_url` names the mistake).
- :func:`format_option`: ``--format table|plain|tsv|json`` and ``--json`` for listings
  (:mod:`waystation.cli.output`).
- :func:`deprecated_alias`: an old flag spelling that forwards to the new one with a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from waystation.cli.errors import UsageProblem, warn

F = TypeVar("F", bound=Callable[..., Any])

REDIS_ENV = "WAYSTATION_REDIS_URL"
CHECKPOINT_ENV = "WAYSTATION_CHECKPOINT"
FORMATS = ("table", "plain", "tsv", "json")


def _alias_key(dest: str) -> str:
    return f"waystation.alias.{dest}"


def deprecated_alias(old: str, new: str, dest: str, *, is_flag: bool = False) -> Callable[[F], F]:
    """A hidden option ``old`` whose value is used for ``dest`` (the option ``new``) with a warning.

    The new option reads it through :func:`alias_value` (its callback); the alias alone is kept for
    one release after the rename.
    """

    def remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is None or (is_flag and not value):
            return
        warn(f"{old} is deprecated and will be removed in the next release: use {new}")
        ctx.meta[_alias_key(dest)] = value

    return click.option(old, f"_alias_{dest}", hidden=True, expose_value=False, callback=remember,
                        is_flag=is_flag, default=None, is_eager=True)


def alias_value(ctx: click.Context, dest: str, value: Any) -> Any:
    """``value``, or the value given through the deprecated alias of ``dest`` when ``value`` was not
    given on the command line."""
    key = _alias_key(dest)
    if key in ctx.meta:
        source = ctx.get_parameter_source(dest)
        if source is not click.core.ParameterSource.COMMANDLINE:
            return ctx.meta[key]
    return value


def redis_url_option(*, required: bool = True, help: str = "Redis URL",
                     why: str = "") -> Callable[[F], F]:
    """``--redis-url URL`` (also ``WAYSTATION_REDIS_URL``; old spelling ``--redis``).

    With ``required``, a missing URL is a usage error (exit 2) naming both ways to give it, then
    ``why`` (e.g. what lives in that Redis).
    """

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        value = alias_value(ctx, "redis_url", value)
        if not value and required and not ctx.resilient_parsing:
            raise click.UsageError(f"no Redis URL: pass --redis-url redis://HOST:6379/0 or set {REDIS_ENV}"
                                   + (f" ({why})" if why else ""), ctx=ctx)
        return value or None

    def decorate(f: F) -> F:
        f = click.option("--redis-url", "redis_url", envvar=REDIS_ENV, show_envvar=True, default=None,
                         callback=callback, help=f"{help} (its password is never printed).")(f)
        return deprecated_alias("--redis", "--redis-url", "redis_url")(f)

    return decorate


def validate_checkpoint(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback: a checkpoint URL that :func:`waystation.stores.check_store_url` accepts."""
    if value is None:
        return None
    from waystation.stores import check_store_url

    try:
        return check_store_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def checkpoint_option(*, default: str | None, help: str) -> Callable[[F], F]:
    """``--checkpoint URL`` (also ``WAYSTATION_CHECKPOINT``), validated up front."""
    return click.option("--checkpoint", default=default, show_default=default is not None, envvar=CHECKPOINT_ENV,
                        callback=validate_checkpoint, help=f"{help} Also {CHECKPOINT_ENV}.")


def format_option(f: F) -> F:
    """``--format table|plain|tsv|json`` and ``--json`` (= ``--format json``) for a listing."""
    f = click.option("--json", "as_json", is_flag=True, help="Same as --format json.")(f)
    return click.option(
        "--format", "fmt", type=click.Choice(FORMATS), default=None,
        help="table (default on a terminal), plain (default when piped: one record a line, never cut), "
             "tsv, or json.")(f)


def require_existing_sqlite(url: str, what: str) -> None:
    """Refuse a ``sqlite://`` URL whose file does not exist, so a typo never creates an empty database."""

    from urllib.parse import urlsplit

    if urlsplit(url).scheme.lower() != "sqlite":
        return
    from waystation.stores.sqlite import path_of

    path = path_of(url)
    if not path.is_file():
        raise UsageProblem(f"no {what} at {path} (from {url})",
                           "a run saves its checkpoints there; pass --checkpoint with the URL the "
                           "run used (or set WAYSTATION_CHECKPOINT)")
