"""`waystation run` and `waystation report` as a user runs them: subprocesses, signals, exit codes."""

from __future__ import annotations

import csv
import json
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
from fakevendor import WAYSTATION, FakeVendor, cli_env, phone_of

pytestmark = pytest.mark.slow


def waystation(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WAYSTATION, *args], env=cli_env(), capture_output=True, text=True, timeout=60,
                          cwd=cwd)


def leads_csv(path: Path, n: int) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "name"])
        for i in range(1, n + 1):
            w.writerow([f"L{i:04d}", f"Person {i}"])
    return path


def paid_route(tmp: Path, url: str) -> Path:
    p = tmp / "paid.yaml"
    p.write_text("name: paid\nsteps:\n"
                 f"  - station: FakePhoneLookup\n    settings: {{base_url: '{url}'}}\n"
                 f"  - station: FakeSkipTrace\n    settings: {{base_url: '{url}'}}\n")
    return p


def noop_route(tmp: Path, delay: float) -> Path:
    p = tmp / "noop.yaml"
    p.write_text(f"name: noop\nsteps:\n  - station: Noop\n    settings: {{delay: {delay}}}\n")
    return p


def ids(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return [r["id"] for r in csv.DictReader(f)]


def test_dry_run_checks_columns_and_calls_nothing(tmp_path: Path) -> None:
    with FakeVendor() as vendor:
        route = paid_route(tmp_path, vendor.url)
        inp = leads_csv(tmp_path / "leads.csv", 5)
        res = waystation("run", str(route), str(inp), "--dry-run", "--checkpoint", f"sqlite:///{tmp_path}/c.db",
                         cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        assert "level 0: FakePhoneLookup" in res.stdout and "level 1: FakeSkipTrace" in res.stdout
        assert "required input fields: name" in res.stdout
        assert "_status" in res.stdout and "dry run: nothing was called" in res.stdout
        assert vendor.total("lookup") == 0
        assert not (tmp_path / "leads.out.csv").exists() and not (tmp_path / "c.db").exists()

        bad = tmp_path / "nocol.csv"
        bad.write_text("id,city\nL1,Boston\n")
        res = waystation("run", str(route), str(bad), "--dry-run")
        assert res.returncode == 2
        assert "requires 'name'" in res.stderr


def test_run_then_report_command(tmp_path: Path) -> None:
    with FakeVendor() as vendor:
        route = paid_route(tmp_path, vendor.url)
        inp = leads_csv(tmp_path / "leads.csv", 30)
        ck = f"sqlite:///{tmp_path}/c.db"
        res = waystation("run", str(route), str(inp), "-o", str(tmp_path / "out.jsonl"), "--checkpoint", ck,
                         "--run-id", "r-report", "--report", str(tmp_path / "rep.json"), "-c", "5")
        assert res.returncode == 0, res.stderr
        assert "FakePhoneLookup" in res.stdout and "hit rate" in res.stdout
        assert "leads/s" not in res.stdout  # no progress bar when stdout is not a terminal
        out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert [o["id"] for o in out] == [f"L{i:04d}" for i in range(1, 31)]
        rep = json.loads((tmp_path / "rep.json").read_text())
        lookup = rep["stations"][0]
        assert lookup["runs"] == vendor.total("lookup") == 30
        assert lookup["hits"] == sum(1 for i in range(1, 31) if phone_of(f"L{i:04d}"))
        assert rep["total_cost"] == pytest.approx(vendor.billed())

        later = waystation("report", "r-report", "--checkpoint", ck, "--json")
        assert later.returncode == 0, later.stderr
        again = json.loads(later.stdout)
        assert again["complete"] and again["leads"] == rep["leads"]
        for a, b in zip(rep["stations"], again["stations"], strict=True):
            assert {k: v for k, v in a.items()} == b
        table = waystation("report", "r-report", "--checkpoint", ck)
        assert "FakeSkipTrace" in table.stdout and "in doubt" in table.stdout
        latest = waystation("report", "--checkpoint", ck)  # no RUN_ID: the latest run
        assert latest.returncode == 0 and "run r-report" in latest.stdout
        listing = waystation("runs", "--checkpoint", ck)
        assert "r-report" in listing.stdout and "complete" in listing.stdout
        assert waystation("report", "nope", "--checkpoint", ck).returncode == 2
        again_run = waystation("run", str(route), str(inp), "--checkpoint", ck, "--run-id", "r-report")
        assert again_run.returncode == 2 and "already exists" in again_run.stderr


def _start(tmp: Path, route: Path, inp: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*WAYSTATION, "run", str(route), str(inp), "-o", str(tmp / "out.csv"),
                             "--checkpoint", f"sqlite:///{tmp}/c.db", *extra],
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp)


def _wait_for(pred: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def _resume_command(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    i = next(i for i, line in enumerate(lines) if "resume with:" in line)
    args = shlex.split(lines[i + 1].strip())
    assert args[:2] == ["waystation", "run"] and "--resume" in args
    return args


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_gracefully_and_the_printed_command_resumes(tmp_path: Path, sig: int, code: int) -> None:
    route = noop_route(tmp_path, 0.05)
    inp = leads_csv(tmp_path / "leads.csv", 400)
    proc = _start(tmp_path, route, inp, "-c", "8", "--grace", "5")
    out = tmp_path / "out.csv"
    _wait_for(lambda: out.exists() and out.stat().st_size > 200)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    assert "no new leads" in stderr
    done = ids(out)
    assert 0 < len(done) < 400
    assert done == [f"L{i:04d}" for i in range(1, len(done) + 1)]
    args = _resume_command(stderr)
    if sig == signal.SIGINT:  # the report of an interrupted run, from its checkpoints
        run_id = args[args.index("--resume") + 1]
        rep = waystation("report", run_id, "--checkpoint", f"sqlite:///{tmp_path}/c.db", "--json", cwd=tmp_path)
        figures = json.loads(rep.stdout)
        assert not figures["complete"] and figures["stations"][0]["runs"] >= len(done)
        text = waystation("report", run_id, "--checkpoint", f"sqlite:///{tmp_path}/c.db", cwd=tmp_path).stdout
        assert "(incomplete)" in text and "status interrupted; resume with: waystation run" in text
    res = subprocess.run([*WAYSTATION, *args[1:]], env=cli_env(), capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert ids(out) == [f"L{i:04d}" for i in range(1, 401)]
    assert "leads: 400 (succeeded 400)" in res.stdout


def test_second_ctrl_c_exits_at_once(tmp_path: Path) -> None:
    route = noop_route(tmp_path, 30)
    inp = leads_csv(tmp_path / "leads.csv", 50)
    proc = _start(tmp_path, route, inp, "-c", "4", "--grace", "60")
    out = tmp_path / "out.csv"
    _wait_for(out.exists)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    # leads sleep 30 s and the grace is 60 s: only an immediate exit ends within the timeout
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130, stderr
    assert "again: exiting now" in stderr
    assert "leads:" not in stdout  # it did not wind down normally
    args = _resume_command(stderr)
    route.write_text("name: noop\nsteps:\n  - station: Noop\n")  # same route, no more waiting
    res = subprocess.run([*WAYSTATION, *args[1:]], env=cli_env(), capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert ids(out) == [f"L{i:04d}" for i in range(1, 51)]
