"""Plugin listings and plugin-API compatibility, with real installed distributions.

Each test writes tiny distributions — a module plus a real ``*.dist-info`` (METADATA and
entry_points.txt) — into a temporary directory put on ``sys.path``; importlib.metadata finds them
exactly as it finds pip-installed packages. Nothing about discovery is mocked.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import json
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from waystation import PLUGIN_API_VERSION, PluginHost
from waystation.cli import main as cli_main
from waystation.cli.main import cli
from waystation.errors import DuplicateStationError, PluginError


class Site:
    """A directory on sys.path holding test distributions."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tag = uuid.uuid4().hex[:8]
        self.dists: list[str] = []

    def dist(self, name: str, body: str, *, version: str = "1.0.0", ep: str = "main") -> str:
        """Install distribution ``name`` whose plugin module has ``body``; returns the dist name."""
        dist = f"wsx-{name}-{self.tag}"
        module = dist.replace("-", "_")
        (self.root / f"{module}.py").write_text(textwrap.dedent(body))
        info = self.root / f"{module}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[waystation]\n{ep} = {module}\n")
        (info / "RECORD").write_text("")
        self.dists.append(dist)
        return dist

    def station(self, cls: str, api: str | None = '">=1,<2"', extra: str = "") -> str:
        """The body of a plugin module registering one station class ``cls``."""
        decl = f"WAYSTATION_API = {api}\n" if api else ""
        return textwrap.dedent(f'''
            from typing import Any, ClassVar
            from waystation import Outcome, Station, hookimpl, RetryPolicy, BreakerPolicy
            {decl}
            class {cls}(Station):
                """A test station."""
                name = "{cls}"
                requires = ("phone",)
                optional = ("city",)
                provides: ClassVar[dict[str, Any]] = {{"x_{cls.lower()}": str}}
                cost = 0.004
                retry = RetryPolicy(max_attempts=4)
                breaker = BreakerPolicy(failure_threshold=3, reset_after=30)

                async def process(self, ctx):
                    return Outcome()

            @hookimpl
            def register_stations():
                return [{cls}]
        ''') + textwrap.dedent(extra)

    def entry_points(self) -> list[md.EntryPoint]:
        """The real entry points of this site's distributions (as importlib.metadata sees them)."""
        return [ep for ep in md.entry_points(group="waystation") if ep.dist and ep.dist.name in self.dists]

    def host(self, strict: bool = False) -> PluginHost:
        return PluginHost.discover(strict=strict, entry_points=self.entry_points())

    def info(self, host: PluginHost, dist: str) -> dict[str, object]:
        return next(p.as_dict() for p in host.plugins if p.distribution == dist)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    for var in ("WAYSTATION_LOAD_PLUGINS", "WAYSTATION_DISABLE_PLUGINS", "WAYSTATION_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    s = Site(tmp_path)
    yield s
    for d in s.dists:
        sys.modules.pop(d.replace("-", "_"), None)
    importlib.invalidate_caches()


def _cli(site: Site, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    env = dict(env or {})
    env.setdefault("WAYSTATION_LOAD_PLUGINS", ",".join(site.dists))
    res = CliRunner().invoke(cli, list(args), env=env)
    return res.exit_code, res.output


def test_compatible_incompatible_and_undeclared(site: Site) -> None:
    good = site.dist("good", site.station(f"Good{site.tag}"))
    future = site.dist("future", site.station(f"Future{site.tag}", api='">=2,<3"'), version="3.1.0")
    hooked = site.dist("hooked", site.station(f"Hooked{site.tag}", api=None, extra='''
        @hookimpl
        def plugin_api():
            return ">=0.5,<1"
    '''))
    loose = site.dist("loose", site.station(f"Loose{site.tag}", api=None))
    host = site.host()

    assert site.info(host, good)["status"] == "loaded"
    assert site.info(host, good)["api"] == ">=1,<2"
    assert host.get(f"Good{site.tag}") is not None

    fut = site.info(host, future)
    assert fut["status"] == "incompatible" and fut["version"] == "3.1.0"
    assert ">=2,<3" in str(fut["error"]) and PLUGIN_API_VERSION in str(fut["error"])
    assert host.get(f"Future{site.tag}") is None  # refused before its stations were registered

    hk = site.info(host, hooked)
    assert hk["status"] == "incompatible" and ">=0.5,<1" in str(hk["error"]), hk

    lo = site.info(host, loose)
    assert lo["status"] == "loaded" and lo["api"] is None and lo["api_declared"] is False
    assert host.get(f"Loose{site.tag}") is not None


def test_import_failure_is_reported_and_others_work(site: Site) -> None:
    good = site.dist("good", site.station(f"Good{site.tag}"))
    broken = site.dist("broken", "import waystation_no_such_dependency\n", version="0.3.0")
    raising = site.dist("raising", site.station(f"Raising{site.tag}", extra='''
        @hookimpl
        def register_commands(cli):
            pass
        raise RuntimeError("config file missing")
    '''))
    host = site.host()
    b = site.info(host, broken)
    assert b["status"] == "failed" and b["version"] == "0.3.0"
    assert "import failed: ModuleNotFoundError" in str(b["error"])
    assert "waystation_no_such_dependency" in str(b["error"])
    r = site.info(host, raising)
    assert r["status"] == "failed" and "RuntimeError: config file missing" in str(r["error"])
    assert site.info(host, good)["status"] == "loaded" and host.get(f"Good{site.tag}") is not None

    code, out = _cli(site, "plugins", "--json")
    assert code == 0
    rows = {p["distribution"]: p for p in json.loads(out)["plugins"]}
    assert rows[broken]["status"] == "failed" and "ModuleNotFoundError" in rows[broken]["error"]
    assert rows[good]["stations"] == [f"Good{site.tag}"]

    code, out = _cli(site, "plugins")
    assert code == 0 and "failed" in out and "loaded" in out


@pytest.mark.parametrize("how", ["flag", "env"])
def test_strict_plugins_makes_a_failure_an_error(site: Site, how: str) -> None:
    site.dist("good", site.station(f"Good{site.tag}"))
    broken = site.dist("broken", "raise ImportError('no vendor sdk')\n", version="0.3.0")
    with pytest.raises(PluginError, match=broken):
        site.host(strict=True)
    args, env = (["--strict-plugins", "plugins"], {}) if how == "flag" else (
        ["plugins"], {"WAYSTATION_STRICT_PLUGINS": "1"})
    code, out = _cli(site, *args, env=env)
    assert code == 2
    assert broken in out and "0.3.0" in out and "no vendor sdk" in out
    # without strict, the same set loads with the failure reported
    code, _ = _cli(site, "plugins")
    assert code == 0


def test_strict_refuses_an_incompatible_plugin(site: Site) -> None:
    future = site.dist("future", site.station(f"Future{site.tag}", api='">=2"'))
    code, out = _cli(site, "--strict-plugins", "stations")
    assert code == 2 and future in out and ">=2" in out and PLUGIN_API_VERSION in out


def test_allow_and_deny_lists_apply_before_import(site: Site, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "imported.txt"
    side_effect = f"open({str(marker)!r}, 'a').write('x')\n"
    good = site.dist("good", site.station(f"Good{site.tag}"))
    noisy = site.dist("noisy", side_effect + "raise SystemExit('must never be imported')\n")

    monkeypatch.setenv("WAYSTATION_DISABLE_PLUGINS", noisy.upper().replace("-", "_"))  # normalised names
    host = site.host()
    assert site.info(host, noisy)["status"] == "disabled"
    assert site.info(host, good)["status"] == "loaded"
    assert not marker.exists()

    monkeypatch.delenv("WAYSTATION_DISABLE_PLUGINS")
    monkeypatch.setenv("WAYSTATION_LOAD_PLUGINS", good)
    host = site.host()
    assert site.info(host, noisy)["status"] == "disabled" and not marker.exists()

    monkeypatch.setenv("WAYSTATION_LOAD_PLUGINS", "")  # set but empty: none
    host = site.host()
    assert {p.status for p in host.plugins} == {"disabled"} and not host.stations


def test_duplicate_station_names_across_distributions(site: Site) -> None:
    name = f"Twin{site.tag}"
    first = site.dist("first", site.station(name), version="1.0.0")
    second = site.dist("second", site.station(name), version="2.0.0")
    with pytest.raises(DuplicateStationError) as info:
        site.host()
    msg = str(info.value)
    assert first in msg and second in msg and "1.0.0" in msg and "2.0.0" in msg and name in msg
    code, out = _cli(site, "stations", "--json")
    assert code == 2 and first in out and second in out


def test_stations_listing(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_main.console, "width", 300)
    good = site.dist("good", site.station(f"Good{site.tag}"), version="1.4.2")
    code, out = _cli(site, "stations", "--json")
    assert code == 0, out
    row = next(r for r in json.loads(out) if r["name"] == f"Good{site.tag}")
    assert row["plugin"] == good and row["version"] == "1.4.2"
    assert row["requires"] == ["phone"] and row["optional"] == ["city"]
    assert row["provides"] == {f"x_good{site.tag}": "str"}
    assert row["cost"] == 0.004 and row["paid"] is True
    assert row["retry"]["max_attempts"] == 4
    assert row["breaker"]["failure_threshold"] == 3 and row["breaker"]["reset_after"] == 30
    assert row["doc"] == "A test station."
    code, out = _cli(site, "stations")
    assert code == 0 and f"Good{site.tag}" in out and "4 attempts" in out


def test_undeclared_api_is_flagged_in_the_table(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_main.console, "width", 300)
    site.dist("loose", site.station(f"Loose{site.tag}", api=None))
    code, out = _cli(site, "plugins")
    assert code == 0 and "undeclared" in out
