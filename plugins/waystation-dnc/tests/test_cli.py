"""``waystation dnc import|status|check`` through the real command line (plugin commands hook)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner
from waystation.cli.main import cli

Write = Callable[[str, str], Path]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})
    return result.exit_code, result.output


def test_dnc_commands_are_added_to_the_cli() -> None:
    code, out = invoke("--help")
    assert code == 0 and "dnc" in out
    code, out = invoke("dnc", "--help")
    assert code == 0 and all(c in out for c in ("import", "status", "check"))


def test_import_status_and_check(tmp_path: Path, write: Write) -> None:
    store = str(tmp_path / "s" / "dnc.sqlite")
    z = tmp_path / "ftc.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("212.txt", "2125550100\n2125550101\nbogus 99\n")
        zf.writestr("312.txt", "312,5550100\n")
    code, out = invoke("dnc", "import", str(z), "--store", store, "--as-of", "2026-11-20")
    assert code == 0, out
    assert "+3 added" in out and "1 rejected" in out and "212, 312" in out
    assert "ftc.zip!212.txt:3" in out
    code, out = invoke("dnc", "import", str(z), "--store", store)
    assert code == 0 and "already imported" in out
    ch = write("changes.txt", "2125550101,D,20261121\n2125550102,A,20261121\n")
    code, out = invoke("dnc", "import", "--changes", str(ch), "--store", store, "--as-of", "2026-11-21")
    assert code == 0 and "+1 added" in out and "-1 removed" in out
    lit = write("lit.txt", "4155550100\n")
    assert invoke("dnc", "import", "--list", "litigator", str(lit), "--store", store)[0] == 0

    code, out = invoke("dnc", "status", "--store", store, "--json")
    assert code == 0
    status = json.loads(out)
    fed = status["lists"]["federal"]
    assert fed["numbers"] == 3 and fed["area_codes"] == [212, 312]
    assert fed["oldest"].startswith("2026-11-20") and fed["age_days"] > 0
    assert status["lists"]["litigator"]["numbers"] == 1
    assert [i["kind"] for i in status["imports"]] == ["full", "changes", "full"]

    code, out = invoke("dnc", "check", "2125550102", "(212) 555-0101", "4155550100", "12", "--store", store)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "2125550102: federal"
    assert lines[1] == "(212) 555-0101: not listed"
    assert lines[2] == "4155550100: litigator (federal list of this area code not loaded)"
    assert lines[3] == "12: not a 10-digit US number"


def test_status_warns_about_old_data(tmp_path: Path, write: Write) -> None:
    store = str(tmp_path / "dnc.sqlite")
    f = write("212.txt", "2125550100\n")
    assert invoke("dnc", "import", str(f), "--store", store, "--as-of", "2020-01-01")[0] == 0
    code, out = invoke("dnc", "status", "--store", store)
    assert code == 0
    assert "warning" in out and "federal data is" in out and "31 days" in out
    code, out = invoke("dnc", "status", "--store", store, "--json")
    assert json.loads(out)["lists"]["federal"]["stale"] is True


def test_errors(tmp_path: Path) -> None:
    code, out = invoke("dnc", "import", str(tmp_path / "missing.txt"), "--store", str(tmp_path / "d.sqlite"))
    assert code == 2 and "DNC file not found" in out  # exit codes of the README's table: 2 usage/input
    code, out = invoke("dnc", "status", "--store", str(tmp_path / "none.sqlite"))
    assert code == 2 and "no DNC store" in out
    code, out = invoke("dnc", "import", "x.txt", "--as-of", "last week", "--store", str(tmp_path / "d.sqlite"))
    assert code == 2 and "not an ISO date" in out


def test_piped_output_is_never_wrapped(tmp_path: Path) -> None:
    """`dnc import` and `dnc status` in a pipe: one line per file / per list, whatever the width."""
    import os
    import subprocess
    import sys

    deep = tmp_path / ("a-rather-long-folder-name-" * 4)
    deep.mkdir()
    f = deep / "212.txt"
    f.write_text("2125550100\n2125550101\n")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS",)}
    store = str(tmp_path / "d.sqlite")
    res = subprocess.run([sys.executable, "-m", "waystation", "dnc", "import", str(f), "--store", store],
                         capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    [line] = res.stdout.splitlines()
    assert line.startswith(str(f)) and "2 lines, +2 added" in line and len(line) > 120
    st = subprocess.run([sys.executable, "-m", "waystation", "dnc", "status", "--store", store],
                        capture_output=True, text=True, env=env, timeout=60)
    assert st.returncode == 0 and "┃" not in st.stdout
    assert any(ln.startswith("federal ") and "212" in ln for ln in st.stdout.splitlines())
