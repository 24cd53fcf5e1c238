"""Calling hook implementations one at a time, so that one plugin's error hurts no one else.

pluggy's own hook call runs every implementation in one loop (``_multicall``): the first one that
raises ends the call, and the implementations after it never run. waystation calls each
implementation itself, in pluggy's order (``tryfirst`` first, ``trylast`` last, later registrations
before earlier ones), with only the arguments it declares (pluggy's "any subset of the arguments"
rule), and contains what each one raises:

- the error is logged with the hook's and the plugin's name (``waystation.hooks`` logger);
- it is reported to the caller's ``on_error`` (the engine records it on the lead's ``errors``);
- it is counted (:func:`hook_error_counts`, and ``waystation_hook_errors_total`` when a run exposes
  metrics);
- the other implementations still run, and the lead and the batch go on.

An implementation may return an awaitable; the async calls await it, and an error it raises is
contained the same way. ``KeyboardInterrupt``/``SystemExit``/``CancelledError`` (not ``Exception``)
are never swallowed.

Besides the plugins registered on the shared :class:`pluggy.PluginManager`, a caller may pass
*observers*: objects whose methods are named like hooks (e.g. one batch's report collector). They
are called after the registered plugins, in the same isolated way, and never become part of the
shared plugin manager (so two batches in one process never see each other's leads).
``hookwrapper``/``wrapper`` implementations are not supported by waystation's hooks: they are
skipped, with a warning once.
"""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pluggy

log = logging.getLogger("waystation.hooks")

_COUNTS: Counter[tuple[str, str]] = Counter()
_WARNED: set[tuple[str, str]] = set()
_SIG_CACHE: dict[tuple[type, str], tuple[str, ...]] = {}


def hook_error_counts() -> dict[tuple[str, str], int]:
    """Errors raised by hook implementations in this process, by ``(hook, plugin)``."""
    return dict(_COUNTS)


@dataclass(frozen=True, slots=True)
class HookFailure:
    """One implementation of ``hook`` (from ``plugin``) raised ``error``."""

    hook: str
    plugin: str
    error: BaseException

    @property
    def message(self) -> str:
        """``hook price_step of plugin acme raised ValueError: ...`` (one line)."""
        text = str(self.error).splitlines()[0] if str(self.error) else ""
        return f"hook {self.hook} of plugin {self.plugin} raised {type(self.error).__name__}" + (
            f": {text}" if text else "")


@dataclass(frozen=True, slots=True)
class _Impl:
    plugin: str
    function: Callable[..., Any]
    argnames: tuple[str, ...]


def _observer_argnames(obj: object, name: str, fn: Callable[..., Any]) -> tuple[str, ...]:
    key = (type(obj), name)
    names = _SIG_CACHE.get(key)
    if names is None:
        params = inspect.signature(fn).parameters.values()
        names = tuple(p.name for p in params if p.default is inspect.Parameter.empty
                      and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
        _SIG_CACHE[key] = names
    return names


OnError = Callable[[HookFailure], None]


class HookCaller:
    """Calls the implementations of waystation's hooks one by one (see the module docstring).

    ``pm``: the shared plugin manager; ``observers``: extra objects called like plugins (not
    registered anywhere); ``on_error``: told of every contained failure (after it is logged and
    counted).
    """

    def __init__(self, pm: pluggy.PluginManager, observers: Iterable[object] = (),
                 on_error: OnError | None = None) -> None:
        self.pm = pm
        self.observers = list(observers)
        self.on_error = on_error
        self._impls: dict[str, list[_Impl]] = {}

    def refresh(self) -> None:
        """Forget the cached implementation lists (after plugins were registered late)."""
        self._impls.clear()

    def impls(self, name: str) -> list[_Impl]:
        """The implementations of hook ``name`` in call order (observers last)."""
        found = self._impls.get(name)
        if found is not None:
            return found
        out: list[_Impl] = []
        caller = getattr(self.pm.hook, name, None)
        if caller is not None:
            for impl in reversed(caller.get_hookimpls()):
                if impl.hookwrapper or getattr(impl, "wrapper", False):
                    if (name, impl.plugin_name) not in _WARNED:
                        _WARNED.add((name, impl.plugin_name))
                        log.warning("hook %s of plugin %s is a wrapper: waystation does not call hook "
                                    "wrappers; it is ignored", name, impl.plugin_name)
                    continue
                out.append(_Impl(impl.plugin_name, impl.function, tuple(impl.argnames)))
        for obj in self.observers:
            fn = getattr(obj, name, None)
            if callable(fn):
                out.append(_Impl(type(obj).__name__, fn, _observer_argnames(obj, name, fn)))
        self._impls[name] = out
        return out

    def has(self, name: str, *, besides: str | None = None) -> bool:
        """Whether hook ``name`` has an implementation (other than plugin ``besides``)."""
        return any(i.plugin != besides for i in self.impls(name))

    # -- calling ---------------------------------------------------------------------------

    def _fail(self, name: str, impl: _Impl, exc: BaseException, on_error: OnError | None) -> HookFailure:
        failure = HookFailure(name, impl.plugin, exc)
        _COUNTS[(name, impl.plugin)] += 1
        log.warning("%s", failure.message, exc_info=log.isEnabledFor(logging.DEBUG))
        for obj in self.observers:
            count = getattr(obj, "hook_error", None)
            if callable(count):
                try:
                    count(name, impl.plugin)
                except Exception:  # pragma: no cover - a metrics sink that fails is ignored
                    log.debug("counting a hook error failed", exc_info=True)
        for sink in (self.on_error, on_error):
            if sink is not None:
                sink(failure)
        return failure

    def _start(self, name: str, impl: _Impl, kwargs: dict[str, Any]) -> Any:
        missing = [a for a in impl.argnames if a not in kwargs]
        if missing:
            raise TypeError(f"it asks for argument(s) {', '.join(missing)} that hook {name} does not have")
        return impl.function(*[kwargs[a] for a in impl.argnames])

    async def _one(self, name: str, impl: _Impl, kwargs: dict[str, Any], on_error: OnError | None
                   ) -> tuple[bool, Any]:
        """Call one implementation (awaiting what it returns): ``(True, result)``, or ``(False,
        None)`` when it raised (the error is contained and reported)."""
        try:
            res = self._start(name, impl, kwargs)
            if inspect.isawaitable(res):
                res = await res
        except Exception as exc:
            self._fail(name, impl, exc, on_error)
            return False, None
        return True, res

    async def results(self, name: str, on_error: OnError | None = None, **kwargs: Any
                      ) -> list[tuple[str, Any]]:
        """Call every implementation; returns ``(plugin, result)`` of those that did not raise."""
        out: list[tuple[str, Any]] = []
        for impl in self.impls(name):
            ok, res = await self._one(name, impl, kwargs, on_error)
            if ok:
                out.append((impl.plugin, res))
        return out

    async def notify(self, name: str, on_error: OnError | None = None, **kwargs: Any) -> None:
        """Call every implementation of an observer hook; results are ignored."""
        if self.impls(name):
            await self.results(name, on_error, **kwargs)

    async def first(self, name: str, on_error: OnError | None = None, **kwargs: Any) -> tuple[str, Any] | None:
        """*firstresult*: ``(plugin, result)`` of the first implementation answering non-``None``;
        one that raises is skipped (and reported) and the next one is asked."""
        for impl in self.impls(name):
            ok, res = await self._one(name, impl, kwargs, on_error)
            if ok and res is not None:
                return impl.plugin, res
        return None

    def notify_sync(self, name: str, on_error: OnError | None = None, **kwargs: Any) -> list[Any]:
        """Call every implementation from synchronous code; returns the awaitables some returned
        (the caller schedules them with :meth:`contain`)."""
        pending: list[Any] = []
        for impl in self.impls(name):
            try:
                res = self._start(name, impl, kwargs)
            except Exception as exc:
                self._fail(name, impl, exc, on_error)
                continue
            if inspect.isawaitable(res):
                pending.append(self.contain(name, impl, res, on_error))
        return pending

    async def contain(self, name: str, impl: _Impl, awaitable: Any, on_error: OnError | None = None) -> None:
        """Await an implementation's awaitable, containing its error."""
        try:
            await awaitable
        except Exception as exc:
            self._fail(name, impl, exc, on_error)


def call_each(pm: pluggy.PluginManager, name: str, on_error: OnError | None = None,
              **kwargs: Any) -> Sequence[Any]:
    """Synchronously call every implementation of hook ``name`` in isolation (e.g.
    ``register_commands``); returns the results of those that did not raise. An implementation
    returning an awaitable has it closed unawaited (synchronous hooks only)."""
    caller = HookCaller(pm, on_error=on_error)
    out: list[Any] = []
    for impl in caller.impls(name):
        try:
            res = caller._start(name, impl, kwargs)
        except Exception as exc:
            caller._fail(name, impl, exc, None)
            continue
        if inspect.iscoroutine(res):
            res.close()
            caller._fail(name, impl, TypeError(f"hook {name} is synchronous; the implementation is async"), None)
            continue
        out.append(res)
    return out
