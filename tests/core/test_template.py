"""`waystation new-plugin`: the generated package is complete, passes its own tests, and — installed
into a fresh virtualenv with the core — shows up in `waystation plugins` and `waystation stations`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from click.testing import CliRunner
from waystation.cli.main import cli
from waystation.cli.new_plugin import PluginNames, create_plugin

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAYSTATION_", "PYTEST_"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def test_names_are_derived_and_validated() -> None:
    n = PluginNames.from_name("acme-phone")
    assert (n.dist, n.module, n.station_class, n.env_prefix) == (
        "waystation-acme-phone", "waystation_acme_phone", "AcmePhoneStation", "WAYSTATION_ACME_PHONE_")
    assert PluginNames.from_name("waystation-acme").dist == "waystation-acme"
    for bad in ("", "9lives", "Bad Name", "acme--x", "acme/../x", "ac.me"):
        with pytest.raises(ValueError, match="invalid plugin name"):
            PluginNames.from_name(bad)


def test_generates_a_complete_package(tmp_path: Path) -> None:
    target = create_plugin("acme-phone", tmp_path)
    assert target == tmp_path / "waystation-acme-phone"
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert files == ["README.md", "pyproject.toml", "src/waystation_acme_phone/__init__.py",
                     "src/waystation_acme_phone/plugin.py", "src/waystation_acme_phone/stations.py",
                     "tests/test_station.py"]
    for f in target.rglob("*"):
        if f.is_file():
            text = f.read_text()
            assert "{{" not in text and "__module__" not in text, f
    pyproject = (target / "pyproject.toml").read_text()
    assert 'name = "waystation-acme-phone"' in pyproject
    assert 'acme-phone = "waystation_acme_phone.plugin"' in pyproject
    assert 'packages = ["src/waystation_acme_phone"]' in pyproject
    plugin = (target / "src/waystation_acme_phone/plugin.py").read_text()
    assert 'WAYSTATION_API = ">=1,<2"' in plugin and "import httpx" not in plugin
    assert "StationTests" in (target / "tests/test_station.py").read_text()
    assert "WAYSTATION_ACME_PHONE_API_KEY" in (target / "README.md").read_text()
    with pytest.raises(FileExistsError):
        create_plugin("acme-phone", tmp_path)


def test_cli_new_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["new-plugin", "acme", "--dir", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out/waystation-acme/src/waystation_acme/stations.py").is_file()
    assert "pip install -e" in res.output
    res = runner.invoke(cli, ["new-plugin", "acme", "--dir", str(tmp_path / "out")])
    assert res.exit_code != 0 and "already exists" in res.output
    res = runner.invoke(cli, ["new-plugin", "Not OK"])
    assert res.exit_code != 0 and "invalid plugin name" in res.output
    # by default it goes into ./plugins when there is one (the repository layout)
    (tmp_path / "repo/plugins").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo")
    assert runner.invoke(cli, ["new-plugin", "beta"]).exit_code == 0
    assert (tmp_path / "repo/plugins/waystation-beta/pyproject.toml").is_file()


def test_generated_tests_pass_against_this_core(tmp_path: Path) -> None:
    """The generated tests, run with the core of this checkout (no install needed)."""
    target = create_plugin("acme-phone", tmp_path)
    env = _env()
    env["PYTHONPATH"] = str(target / "src")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=target,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "13 passed" in proc.stdout, proc.stdout


def test_generated_plugin_is_ruff_and_mypy_clean(tmp_path: Path) -> None:
    """`ruff check .` and `mypy` (strict, its own config) pass on a freshly generated plugin."""
    target = create_plugin("acme-phone", tmp_path)
    env = _env()
    env["PYTHONPATH"] = str(target / "src")
    for cmd in ([sys.executable, "-m", "ruff", "check", "--no-cache", "."],
                [sys.executable, "-m", "mypy", "--no-incremental"]):
        proc = subprocess.run(cmd, cwd=target, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{cmd}: {proc.stdout}{proc.stderr}"


def test_generated_station_quotes_paths_and_reads_through_the_capped_helper(tmp_path: Path) -> None:
    target = create_plugin("acme-phone", tmp_path)
    code = (target / "src/waystation_acme_phone/stations.py").read_text()
    assert "path_segment(ctx.data['phone'])" in code and "VendorClient" in code and "resp.parse(" in code
    assert "httpx.AsyncClient" not in code and "Bearer {s.api_key" not in code
    assert 'required_settings: ClassVar[tuple[str, ...]] = ("api_key",)' in code


@pytest.mark.slow
def test_generated_plugin_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    """pip install <core> <generated plugin>[test] into a new venv; its tests pass there and the
    listings show it."""
    target = create_plugin("acme-phone", tmp_path / "src")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    bindir = env_dir / "bin"
    env = _env()
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"

    def run(*cmd: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{cmd}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    run(str(bindir / "pip"), "install", "-q", str(REPO), f"{target}[test]")
    tests = run(str(bindir / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=target)
    assert "13 passed" in tests.stdout, tests.stdout

    plugins = json.loads(run(str(bindir / "waystation"), "plugins", "--json").stdout)
    assert plugins["plugin_api"]
    mine = [p for p in plugins["plugins"] if p["distribution"] == "waystation-acme-phone"]
    assert len(mine) == 1, plugins
    assert mine[0]["status"] == "loaded" and mine[0]["api"] == ">=1,<2" and mine[0]["version"] == "0.1.0"
    assert mine[0]["stations"] == ["AcmePhoneStation"]

    stations = json.loads(run(str(bindir / "waystation"), "stations", "--json").stdout)
    row = next(s for s in stations if s["name"] == "AcmePhoneStation")
    assert row["plugin"] == "waystation-acme-phone" and row["requires"] == ["phone"]
    assert row["provides"] == {"acme_phone_status": "str"} and row["cost"] == 0.001
    assert row["retry"]["max_attempts"] == 3 and row["breaker"]["failure_threshold"] == 5
