"""Finding plugins through the ``waystation`` entry-point group, each one loaded in isolation.

Unlike pluggy's ``load_setuptools_entrypoints``, one plugin's import error does not stop the host
(it is recorded with its distribution, version and error), two entry points of the same name in two
distributions are both loaded, allow/deny lists apply *before* a plugin is imported, and a plugin
declaring an incompatible plugin-API range is refused with both versions named.

Environment:

- ``WAYSTATION_LOAD_PLUGINS=dist1,dist2``: load only these distributions (set but empty: none).
- ``WAYSTATION_DISABLE_PLUGINS=dist3``: never load these.
- ``WAYSTATION_STRICT_PLUGINS=1``: any plugin problem is an error (like ``--strict-plugins``).
- ``WAYSTATION_EXTRA_PLUGINS=module:attr,module2``: a development aid: also register these
  importable objects (modules, or attributes of modules) as plugins, as if an installed
  distribution's entry point named them. Lets a test or a station under development run through
  the real ``waystation`` command without packaging it. **Trusted input only**: it imports (and
  so runs) any module it names, like an installed plugin; never let untrusted parties set it.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from waystation import hooks
from waystation.builtin import DefaultsPlugin
from waystation.catalogue import Suggestion
from waystation.catalogue import suggest as suggest_station
from waystation.errors import DuplicateStationError, PluginError
from waystation.station import Station

#: The version of the contract plugins are written against (hooks, Station, Outcome, Stop).
PLUGIN_API_VERSION = "1.0"
ENTRY_POINT_GROUP = "waystation"
LOCAL = "<local>"

PluginStatus = Literal["loaded", "failed", "disabled", "incompatible"]


def normalize(name: str) -> str:
    """A distribution name in PEP 503 normal form."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class PluginInfo:
    """One plugin as found: its distribution, what it registered, or why it did not load."""

    distribution: str
    version: str
    entry_point: str
    value: str
    status: PluginStatus = "loaded"
    error: str | None = None
    api: str | None = None
    stations: list[str] = field(default_factory=list)

    @property
    def api_declared(self) -> bool:
        """Whether the plugin declares the plugin-API range it supports."""
        return self.api is not None

    def as_dict(self) -> dict[str, Any]:
        """For ``waystation plugins --json``."""
        return {
            "distribution": self.distribution, "version": self.version, "entry_point": self.entry_point,
            "value": self.value, "status": self.status, "error": self.error, "api": self.api,
            "api_declared": self.api_declared, "stations": self.stations,
        }


@dataclass(frozen=True)
class StationInfo:
    """A known station class and where it comes from."""

    cls: type[Station]
    plugin: str = LOCAL
    version: str = ""


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return [normalize(p) for p in raw.split(",") if p.strip()]


def _short_error(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def new_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with waystation's hook specs and the core's default plugin."""
    pm = pluggy.PluginManager(hooks.PROJECT)
    pm.add_hookspecs(hooks)
    pm.register(DefaultsPlugin(), name="waystation.defaults")
    from waystation.cache.erase import CacheEraser  # the lookup cache's part of `waystation forget`

    pm.register(CacheEraser(), name="waystation.cache")
    from waystation.suppress.forget import LedgerForget
    from waystation.suppress.screen import screen_from_env

    pm.register(LedgerForget(), name="waystation.suppress.forget")  # `waystation forget` remembers the person
    screen = screen_from_env()
    if screen is not None:  # the suppression ledger applies to every route (waystation suppress)
        pm.register(screen, name="waystation.suppress")
    return pm


class PluginHost:
    """The plugin manager, the plugins found, and the station registry."""

    def __init__(self, strict: bool = False) -> None:
        self.pm = new_plugin_manager()
        self.strict = strict
        self.plugins: list[PluginInfo] = []
        self.stations: dict[str, StationInfo] = {}

    # -- stations ---------------------------------------------------------------------------

    def add_station(self, cls: type[Station], plugin: str = LOCAL, version: str = "") -> None:
        """Register one station class; a second class under the same name is an error."""
        if not (isinstance(cls, type) and issubclass(cls, Station)):
            raise PluginError(f"{plugin}: {cls!r} is not a waystation.Station subclass")
        if not cls.name:
            raise PluginError(f"{plugin}: station class {cls.__qualname__} has no name")
        known = self.stations.get(cls.name)
        if known is not None and known.cls is not cls:
            raise DuplicateStationError(
                f"station {cls.name!r} is registered twice: by {known.plugin} {known.version} "
                f"({known.cls.__module__}.{known.cls.__qualname__}) and by {plugin} {version} "
                f"({cls.__module__}.{cls.__qualname__})".replace("  ", " "))
        self.stations[cls.name] = StationInfo(cls, plugin, version)

    def add_stations(self, classes: Iterable[type[Station]], plugin: str = LOCAL, version: str = "") -> None:
        """Register several station classes."""
        for cls in classes:
            self.add_station(cls, plugin, version)

    def get(self, name: str) -> type[Station] | None:
        """The station class called ``name``, if known."""
        info = self.stations.get(name)
        return info.cls if info else None

    def suggest(self, name: str) -> str | None:
        """The known station name closest to ``name`` (installed, or in the catalogue)."""
        found = self.suggestion(name)
        return found.name if found else None

    def suggestion(self, name: str) -> Suggestion | None:
        """The closest station to ``name`` among the installed ones and the catalogue of known
        stations (:mod:`waystation.catalogue`), with the package to install when it is not."""
        return suggest_station(name, self.stations)

    # -- plugins ----------------------------------------------------------------------------

    def register_plugin(self, obj: object, name: str, info: PluginInfo | None = None) -> PluginInfo:
        """Register a hook-implementation object (a module, or any object) and its stations."""
        info = info or PluginInfo(name, "", name, repr(obj))
        declared = getattr(obj, "WAYSTATION_API", None)
        api: str | None = str(declared) if declared is not None else None
        try:
            self.pm.register(obj, name=name)
        except Exception as exc:
            return self._fail(info, "failed", f"invalid hook implementation: {_short_error(exc)}")
        if api is None:
            answers: list[Any] = [impl.function() for impl in self.pm.hook.plugin_api.get_hookimpls()
                       if impl.plugin is obj]
            api = next((str(a) for a in answers if a), None)
        info.api = api
        if api is not None:
            try:
                ok = Version(PLUGIN_API_VERSION) in SpecifierSet(str(api))
            except InvalidSpecifier:
                self.pm.unregister(obj)
                return self._fail(info, "incompatible", f"declares an invalid plugin-API range {api!r}")
            if not ok:
                self.pm.unregister(obj)
                return self._fail(info, "incompatible",
                                  f"supports plugin API {api} but this waystation has plugin API "
                                  f"{PLUGIN_API_VERSION}")
        for impl in self.pm.hook.register_stations.get_hookimpls():
            if impl.plugin is not obj:
                continue
            try:
                returned: Any = impl.function()
                classes = list(returned or ())
                for cls in classes:
                    self.add_station(cls, info.distribution, info.version)
                    info.stations.append(cls.name)
            except DuplicateStationError:
                self.pm.unregister(obj)
                raise
            except Exception as exc:
                self.pm.unregister(obj)
                return self._fail(info, "failed", f"register_stations raised {_short_error(exc)}")
        self.plugins.append(info)
        return info

    def _fail(self, info: PluginInfo, status: PluginStatus, error: str) -> PluginInfo:
        info.status = status
        info.error = error
        self.plugins.append(info)
        if self.strict:
            raise PluginError(f"plugin {info.distribution} {info.version} ({info.entry_point}): {error}")
        return info

    def load_entry_points(self, entry_points: Sequence[md.EntryPoint] | None = None) -> None:
        """Load every ``waystation`` entry point, each in isolation (see the module docstring)."""
        allow = _env_list("WAYSTATION_LOAD_PLUGINS")
        deny = set(_env_list("WAYSTATION_DISABLE_PLUGINS") or [])
        if entry_points is None:
            entry_points = list(md.entry_points(group=ENTRY_POINT_GROUP))
        eps = list(entry_points)
        for ep in eps:
            dist = ep.dist
            dist_name = dist.metadata["Name"] if dist is not None else ep.module
            version = dist.version if dist is not None else ""
            info = PluginInfo(dist_name, version, ep.name, ep.value)
            norm = normalize(dist_name)
            if (allow is not None and norm not in allow) or norm in deny:
                info.status = "disabled"
                info.error = "disabled by WAYSTATION_LOAD_PLUGINS / WAYSTATION_DISABLE_PLUGINS"
                self.plugins.append(info)
                continue
            try:
                obj = ep.load()
            except Exception as exc:
                self._fail(info, "failed", f"import failed: {_short_error(exc)}")
                continue
            self.register_plugin(obj, f"{dist_name}:{ep.name}", info)
        self.load_extra_plugins()

    def load_extra_plugins(self, spec: str | None = None) -> None:
        """Register the objects ``WAYSTATION_EXTRA_PLUGINS`` (or ``spec``) names (see the module
        docstring); each is isolated like an entry point."""
        import importlib

        raw = os.environ.get("WAYSTATION_EXTRA_PLUGINS", "") if spec is None else spec
        for item in (p.strip() for p in raw.split(",")):
            if not item:
                continue
            module, _, attr = item.partition(":")
            info = PluginInfo(item, "", item, item)
            try:
                obj: Any = importlib.import_module(module)
                for part in attr.split(".") if attr else ():
                    obj = getattr(obj, part)
            except Exception as exc:
                self._fail(info, "failed", f"import failed: {_short_error(exc)}")
                continue
            self.register_plugin(obj, f"extra:{item}", info)

    @classmethod
    def discover(cls, strict: bool | None = None, entry_points: Sequence[md.EntryPoint] | None = None
                 ) -> PluginHost:
        """A host with every installed plugin loaded."""
        if strict is None:
            strict = os.environ.get("WAYSTATION_STRICT_PLUGINS", "") not in ("", "0", "false", "no")
        host = cls(strict=strict)
        host.load_entry_points(entry_points)
        return host
