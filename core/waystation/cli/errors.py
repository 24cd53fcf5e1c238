"""Exit codes and the errors a user can cause, each told in one or two lines on stderr.

Every command raises :class:`CliError` (or a subclass) for a problem the user can fix; the
``waystation`` entry point (:func:`waystation.cli.main.main`) prints it as::

    error: cannot reach Redis at redis://:***@cache:6379/0 (ConnectionRefusedError)
      check that Redis is running there and the URL, port and password are right

and exits with the code of the table below (also in the README). A traceback is printed only
with ``waystation --debug`` or ``-v``. Anything else that escapes a command is translated by
:func:`translate`: a missing optional dependency names the exact ``pip install`` line, a service
that cannot be reached names its URL with the password masked.

========  =====================================================================================
code      meaning
========  =====================================================================================
0         done (a run may still have failed or rejected leads: see its report, ``--fail-on``)
1         a run broke off and can be resumed (the resume command is printed); or an internal
          error (a bug: run with ``--debug`` and report it)
2         usage, route or input error: fix the command, the route or the file and run again
3         a missing dependency or an unreachable service (Redis, PostgreSQL, a data file)
130, 143  interrupted by Ctrl-C (SIGINT) / SIGTERM; a run prints its resume command
========  =====================================================================================
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from typing import IO, Any

import click

EXIT_OK = 0
EXIT_BROKE_OFF = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

#: Optional dependencies: import name -> the extra of ``waystation`` that installs it.
EXTRAS: dict[str, str] = {"redis": "redis", "dramatiq": "workers", "pika": "rabbitmq", "sqlalchemy": "postgres",
                          "psycopg": "postgres"}


def use_color(stream: IO[str] | None = None) -> bool:
    """Whether to colour ``stream``: a terminal, and ``NO_COLOR`` not set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class CliError(click.ClickException):
    """A problem the user can fix: ``message`` says what is wrong, ``hint`` what to do."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str | None = None, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code  # type: ignore[misc]  # click declares it a ClassVar

    def show(self, file: IO[Any] | None = None) -> None:
        """Print ``error: message`` and the hint (indented) on stderr."""
        print_error(self.format_message(), self.hint)


class UsageProblem(CliError):
    """A bad option, route or input file (exit 2)."""

    exit_code = EXIT_USAGE


class MissingDependency(CliError):
    """An optional dependency is not installed (exit 3)."""

    exit_code = EXIT_UNAVAILABLE


class ServiceUnavailable(CliError):
    """A service (Redis, PostgreSQL) cannot be reached (exit 3)."""

    exit_code = EXIT_UNAVAILABLE


def print_error(message: str, hint: str | None = None, *, label: str = "error") -> None:
    """``label: message`` (+ an indented hint line) on stderr; plain text, never markup."""
    color = use_color(sys.stderr)
    head = click.style(f"{label}:", fg="red" if label == "error" else "yellow", bold=True) if color else f"{label}:"
    click.echo(f"{head} {message}", err=True, color=color)
    if hint:
        click.echo(f"  {hint}", err=True, color=color)


def warn(message: str, hint: str | None = None) -> None:
    """A warning on stderr, in the same shape as an error."""
    print_error(message, hint, label="warning")


def missing_extra(module: str) -> MissingDependency:
    """The error for an optional dependency ``module`` that is not installed."""
    root = module.split(".")[0]
    extra = EXTRAS.get(root)
    if extra is not None:
        return MissingDependency(f"this needs the {root!r} package, which is not installed",
                                 f"pip install 'waystation[{extra}]'")
    return MissingDependency(f"this needs the {root!r} package, which is not installed", f"pip install {root}")


def mask_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    from waystation.stores import redact_url

    try:
        return redact_url(url)
    except ValueError:
        return url


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes/contexts and the members of exception groups, each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)
        for nxt in (e.__cause__, e.__context__):
            if nxt is not None:
                todo.append(nxt)


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError):  # builtins: refused, reset, timed out
        return True
    if isinstance(exc, socket.gaierror):  # the host name does not resolve
        return True
    mod = type(exc).__module__
    return mod.startswith("redis") and type(exc).__name__ in (
        "ConnectionError", "TimeoutError", "AuthenticationError", "BusyLoadingError",
        "AuthenticationWrongNumberOfArgsError")


def service_error(kind: str, url: str, exc: BaseException) -> ServiceUnavailable:
    """The error for a service ``kind`` (``Redis``) at ``url`` that failed with ``exc``."""
    what = type(exc).__name__
    detail = str(exc).splitlines()[0] if str(exc) else ""
    if "auth" in what.lower() or "auth" in detail.lower() or "password" in detail.lower():
        hint = f"check the user name and password in the URL (or the {kind} server's requirepass/ACL)"
    else:
        hint = f"check that {kind} is running there and that host, port and database in the URL are right"
    detail = detail.replace(url, mask_url(url)) if detail else ""
    return ServiceUnavailable(f"cannot reach {kind} at {mask_url(url)} ({what}{': ' + detail if detail else ''})",
                              hint)


@contextlib.contextmanager
def service(kind: str, url: str) -> Iterator[None]:
    """Turn a missing client library or a failed connection inside the block into one-line errors
    that name the URL (password masked). ``with service("Redis", url): asyncio.run(...)``."""
    try:
        yield
    except ModuleNotFoundError as exc:
        raise missing_extra(exc.name or kind.lower()) from exc
    except CliError:
        raise
    except Exception as exc:
        for e in _chain(exc):
            if _is_connection_error(e):
                raise service_error(kind, url, e) from exc
        raise


def translate(exc: BaseException) -> CliError | None:
    """A :class:`CliError` for an exception that escaped a command, when it is the user's to fix."""
    for e in _chain(exc):
        if isinstance(e, CliError):
            return e
        if isinstance(e, ModuleNotFoundError) and e.name and e.name.split(".")[0] in EXTRAS:
            return missing_extra(e.name)
    from waystation.errors import RouteError

    for e in _chain(exc):
        if isinstance(e, RouteError):
            return route_error(e)
        if _is_connection_error(e) and type(e).__module__.startswith("redis"):
            return ServiceUnavailable(f"cannot reach Redis ({type(e).__name__}: {e})",
                                      "check that Redis is running and the URL (--redis-url) is right")
    return None


def route_error(exc: Any, hint: str | None = None) -> UsageProblem:
    """Every problem of a :class:`~waystation.errors.RouteError` (file:line:column each), exit 2."""
    problems = [str(p) for p in exc.problems]
    n = len(problems)
    head = problems[0] if n == 1 else f"{n} problems in the route:\n" + "\n".join(f"  {p}" for p in problems)
    return UsageProblem(head, hint or "fix the route and run `waystation check ROUTE` again")
