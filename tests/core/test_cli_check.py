"""`waystation check`, `stations` and `plugins` on a core with toy stations (no plugin installed)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from toys import make
from waystation import PluginHost
from waystation.cli.main import cli


def host() -> PluginHost:
    h = PluginHost()
    h.add_stations([make("Ident", {"first_name": str, "zipcode": str}),
                    make("Income", {"income": int}, requires=("zipcode",), cost=0.01)])
    return h


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), obj={"host": host()})


def test_check_prints_levels(tmp_path: Path) -> None:
    route = tmp_path / "r.yaml"
    route.write_text("name: demo\nbudget: 0.05\nsteps:\n  - station: Ident\n  - station: Income\n"
                     "    condition: zipcode exists\n  - station: Scraper\n    enabled: false\n")
    result = invoke("check", str(route))
    assert result.exit_code == 0, result.output
    assert "level 0: Ident | Scraper (not installed)" in result.output
    assert "level 1: Income [$0.01; if zipcode exists]" in result.output
    data = json.loads(invoke("check", "--json", str(route)).output)
    assert [s["id"] for s in data["steps"]] == ["Ident", "Scraper", "Income"]


def test_check_fails_with_every_error_and_its_line(tmp_path: Path) -> None:
    route = tmp_path / "bad.yaml"
    route.write_text("name: demo\nsteps:\n  - station: Idnet\n  - station: Income\n    condition: zipcode >\n")
    result = invoke("check", str(route))
    assert result.exit_code == 2  # the same code as `run` gives for a route error
    assert f"{route}:3:14: unknown station 'Idnet' (did you mean 'Ident'?)" in result.output
    assert f"{route}:5" in result.output and "malformed condition" in result.output


def test_stations_and_plugins_listings() -> None:
    rows = json.loads(invoke("stations", "--json").output)
    assert {r["name"] for r in rows} == {"Ident", "Income"}
    income = next(r for r in rows if r["name"] == "Income")
    assert income["requires"] == ["zipcode"] and income["cost"] == 0.01 and income["paid"] is True
    assert "Income" in invoke("stations").output
    listing = json.loads(invoke("plugins", "--json").output)
    assert listing["plugin_api"] == "1.0"
