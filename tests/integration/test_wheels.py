"""Installed as a user installs it: the core and every plugin from built wheels into a fresh
virtualenv outside the repository, then `waystation init` in an empty folder and the quickstart
route there. Proves that the routes and examples ship inside the wheel and that nothing depends on
the source tree."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(cmd)} exited {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout


def test_wheels_install_init_and_quickstart(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.mktemp("wheels")
    assert not base.resolve().is_relative_to(ROOT)
    wheels = base / "dist"
    # hatchling and uv come with the test extra: no isolated build env per wheel, and uv resolves
    # the dependencies in parallel (the same install with pip takes minutes)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
          str(ROOT), *map(str, PLUGINS)], cwd=base)
    built = sorted(wheels.glob("*.whl"))
    assert len(built) == 1 + len(PLUGINS), built
    core = next(w for w in built if w.name.startswith("waystation-"))
    names = zipfile.ZipFile(core).namelist()
    assert "waystation/data/routes/free-only.yaml" in names
    assert "waystation/data/examples/leads.csv" in names
    assert any(n.startswith("waystation/data/examples/dnc/federal/") for n in names)
    assert any(n.endswith("licenses/LICENSE") for n in names)

    env_dir = base / "venv"
    uv = [sys.executable, "-m", "uv"]
    _run([*uv, "venv", "-q", "--python", sys.executable, str(env_dir)], cwd=base)
    _run([*uv, "pip", "install", "-q", "--python", str(env_dir / "bin" / "python"), *map(str, built)], cwd=base)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAYSTATION_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    ws = str(env_dir / "bin" / "waystation")

    project = base / "project"
    project.mkdir()
    out = _run([ws, "init"], cwd=project, env=env)
    assert "wrote" in out
    assert (project / "routes" / "free-only.yaml").is_file() and (project / "examples" / "leads.csv").is_file()
    env_example = (project / ".env.example").read_text()
    for key in ("TELNYX_API_KEY=", "RAPIDAPI_KEY=", "REALVALIDATION_TOKEN="):
        assert key in env_example

    _run([ws, "run", "routes/free-only.yaml", "examples/leads.csv", "-o", "out/enriched.csv"], cwd=project,
         env=env)
    with (project / "out" / "enriched.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    with (project / "examples" / "leads.csv").open(newline="") as f:
        leads = list(csv.DictReader(f))
    assert len(rows) == len(leads) == 195
    # a lead with no usable phone fails closed at the DNC gate
    assert {r["_status"] for r in rows} <= {"succeeded", "stopped", "failed"}
    assert sum(r["_status"] == "stopped" for r in rows) > 0  # the DNC sample stops listed leads
    assert (project / "out" / "leads.db").is_file()
