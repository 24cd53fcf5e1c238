"""The front door: listings in pipes and on terminals of 80 and 200 columns, errors with the exit
codes of the README's table, and no traceback unless asked for. Real subprocesses throughout."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from clirun import env_for, on_terminal, piped
from longnames import NAMES

pytestmark = pytest.mark.slow

EXAMPLE_ROUTE = "name: demo\nsteps:\n  - station: Short\n"


def no_traceback(*texts: str) -> None:
    for t in texts:
        assert "Traceback" not in t and 'File "' not in t, t


# -- listings --------------------------------------------------------------------------------


def test_piped_listing_is_plain_untruncated_and_greppable() -> None:
    ran = piped("stations")
    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    for name in NAMES:
        [line] = [ln for ln in lines if ln.startswith(name + " ")]  # one record a line, full name
        assert "…" not in line
    assert "\x1b[" not in ran.out and "┃" not in ran.out  # no table, no colour
    long = next(ln for ln in lines if ln.startswith(NAMES[0]))
    assert "field_number_11_with_a_long_name" in long  # nothing cut, however long the line


@pytest.mark.parametrize("columns", [80, 200])
def test_terminal_table_fits_and_never_cuts_a_name(columns: int) -> None:
    ran = on_terminal("stations", columns=columns)
    assert ran.code == 0, ran.out
    text = ran.text
    for name in NAMES:
        assert name in text
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= columns
    assert "┃" in text  # a table on a terminal
    no_traceback(text)
    if columns == 200:
        assert "requires" in text and "provides" in text
    else:
        assert "--format plain shows all" in " ".join(text.split())


def test_markup_in_plugin_text_is_printed_as_text_and_no_color_is_honoured() -> None:
    ran = on_terminal("stations", NAMES[0], columns=100, env=env_for(NO_COLOR="1"))
    assert ran.code == 0, ran.out
    assert "[red]not markup[/red]" in ran.text and "[link=x]brackets[/link]" in ran.text
    assert "How many [bold]tries[/bold]." in ran.text
    assert "\x1b[3" not in ran.out and "\x1b[1m" not in ran.out  # no colour, no bold
    coloured = on_terminal("stations", columns=100)
    assert "\x1b[" in coloured.out  # colour is on by default on a terminal


def test_station_detail_shows_everything() -> None:
    ran = piped("stations", NAMES[0])
    assert ran.code == 0, ran.err
    out = ran.out
    assert "requires:  first_name, last_name" in out
    assert "field_number_0_with_a_long_name: str" in out
    assert "price:     $0.0123 per call (paid)" in out
    assert "env WAYSTATION_LONG_API_KEY" in out and "(secret)" in out
    assert "threshold: int = 3  env WAYSTATION_LONG_THRESHOLD" in out
    assert "retry:" in out and "breaker:" in out
    data = json.loads(piped("stations", NAMES[0], "--format", "json").out)
    assert data["settings"][0]["env"] == "WAYSTATION_LONG_API_KEY"


def test_formats_tsv_json_plain() -> None:
    tsv = piped("stations", "--format", "tsv").out.splitlines()
    assert tsv[0].split("\t")[0] == "station" and len(tsv) == 1 + len(NAMES)
    rows = json.loads(piped("stations", "--format", "json").out)
    assert sorted(r["name"] for r in rows) == sorted(NAMES)
    assert json.loads(piped("stations", "--json").out) == rows
    plain = on_terminal("stations", "--format", "plain", columns=80)
    assert "┃" not in plain.text and NAMES[0] in plain.text


# -- station lookup ----------------------------------------------------------------------------


def test_stations_name_not_installed_names_the_package() -> None:
    ran = piped("stations", "TelnyxGatekeepStation")
    assert ran.code == 2
    assert "TelnyxGatekeepStation is in waystation-telnyx: pip install waystation-telnyx" in ran.err
    typo = piped("stations", "Shrot")
    assert typo.code == 2 and "did you mean 'Short'?" in typo.err
    no_traceback(ran.err, typo.err)


def test_one_typo_gives_one_error_with_the_package_hint(tmp_path: Path) -> None:
    route = tmp_path / "r.yaml"
    route.write_text("name: r\nsteps:\n  - station: TruePeopleSearchStatoin\n"
                     "  - station: Short\n    after: TruePeopleSearchStation\n")
    ran = piped("check", str(route))
    assert ran.code == 2
    problems = [ln for ln in ran.err.splitlines() if str(route) in ln]
    assert len(problems) == 1, ran.err
    assert "did you mean 'TruePeopleSearchStation'? It is in waystation-peoplesearch: pip install " \
           "waystation-peoplesearch" in problems[0]
    # a field that only the misspelt station would have provided is not a second error
    route.write_text("name: r\nsteps:\n  - station: TruePeopleSearchStatoin\n"
                     f"  - station: {NAMES[1]}\n")
    ran = piped("check", str(route), "--input-fields", "id,first_name")
    assert ran.code == 2 and len([ln for ln in ran.err.splitlines() if str(route) in ln]) == 1, ran.err
    route.write_text(f"name: r\nsteps:\n  - station: Short\n  - station: {NAMES[1]}\n")
    alone = piped("check", str(route), "--input-fields", "id,first_name")
    assert alone.code == 2 and "requires field 'phone'" in alone.err  # without the typo it is reported


# -- errors and exit codes ------------------------------------------------------------------------


def test_check_and_run_give_the_same_code_for_a_route_error(tmp_path: Path) -> None:
    route = tmp_path / "bad.yaml"
    route.write_text("name: bad\nsteps:\n  - station: Short\n   settings: {}\n")
    leads = tmp_path / "leads.csv"
    leads.write_text("id,name\n1,a\n")
    check = piped("check", str(route))
    run = piped("run", str(route), str(leads), "--checkpoint", f"sqlite:///{tmp_path / 'ck.db'}")
    assert check.code == run.code == 2
    for r in (check, run):
        assert f"{route}:4:4: invalid YAML in `settings: {{}}`: the indentation does not match the lines " \
               "above" in r.err
        assert "error(s)" not in r.err and "route not valid for this input" not in r.err
        no_traceback(r.err)
        assert len(r.err.strip().splitlines()) == 2


def test_report_on_a_missing_store_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    ran = piped("report", "--checkpoint", "sqlite:///typo.db", cwd=tmp_path)
    assert ran.code == 2 and "no checkpoint store at typo.db" in ran.err
    assert not (tmp_path / "typo.db").exists() and list(tmp_path.iterdir()) == []
    runs = piped("runs", "--checkpoint", "sqlite:///typo.db", cwd=tmp_path)
    assert runs.code == 2 and list(tmp_path.iterdir()) == []
    for op in ("stats", "prune", "clear"):
        cache = piped("cache", op, "--cache-url", "sqlite:///typo.db", cwd=tmp_path)
        assert cache.code == 2 and "no lookup cache at typo.db" in cache.err
        assert list(tmp_path.iterdir()) == []


def test_checkpoint_url_mistakes_are_named(tmp_path: Path) -> None:
    route = tmp_path / "r.yaml"
    route.write_text(EXAMPLE_ROUTE)
    leads = tmp_path / "leads.csv"
    leads.write_text("id\n1\n")
    ran = piped("run", str(route), str(leads), "--checkpoint", "sqlite:/tmp/x.db", cwd=tmp_path)
    assert ran.code == 2
    assert "needs // after 'sqlite:'" in ran.err and "sqlite:////tmp/x.db for the absolute path /tmp/x.db" in ran.err
    assert not (tmp_path / "tmp").exists()
    bare = piped("runs", "--checkpoint", "/tmp/x.db", cwd=tmp_path)
    assert bare.code == 2 and "is not a URL" in bare.err
    no_traceback(ran.err, bare.err)


def test_unreachable_redis_names_the_url_with_the_password_masked(tmp_path: Path) -> None:
    ran = piped("runs", "--checkpoint", "redis://:hunter2@127.0.0.1:1/0")
    assert ran.code == 3, ran.err
    assert "cannot reach Redis at redis://:***@127.0.0.1:1/0" in ran.err
    assert "check that Redis is running" in ran.err and "hunter2" not in ran.err
    no_traceback(ran.err)
    assert len(ran.err.strip().splitlines()) == 2
    route = tmp_path / "r.yaml"
    route.write_text(EXAMPLE_ROUTE)
    leads = tmp_path / "leads.csv"
    leads.write_text("id\n1\n")
    run = piped("run", str(route), str(leads), "-o", str(tmp_path / "o.csv"), "--checkpoint",
                "redis://:hunter2@127.0.0.1:1/0")
    assert run.code == 3 and "cannot reach Redis at redis://:***@127.0.0.1:1/0" in run.err
    assert "hunter2" not in run.err + run.out
    no_traceback(run.err)
    debug = piped("--debug", "runs", "--checkpoint", "redis://:hunter2@127.0.0.1:1/0")
    assert debug.code == 3 and "Traceback" in debug.err


def test_missing_redis_extra_names_the_pip_line(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['redis'] = None  # as if not installed\n")
    env = env_for()
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    ran = piped("runs", "--checkpoint", "redis://127.0.0.1:6379/0", env=env)
    assert ran.code == 3, ran.err
    assert "pip install 'waystation[redis]'" in ran.err
    no_traceback(ran.err)
    breaker = piped("breaker", "status", "--redis-url", "redis://127.0.0.1:6379/0", env=env)
    assert breaker.code == 3 and "pip install 'waystation[redis]'" in breaker.err
    no_traceback(breaker.err)
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['dramatiq'] = None\n")
    queue = piped("queue", "status", "RUN", "--redis-url", "redis://127.0.0.1:6379/0", env=env)
    assert queue.code == 3 and "pip install 'waystation[workers]'" in queue.err, queue.err
    no_traceback(queue.err)


def test_usage_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    for args in (["run", "nope.yaml", "nope.csv"], ["stations", "--format", "xml"], ["no-such-command"],
                 ["runs", "prune", "--older-than", "soon", "--checkpoint", f"sqlite:///{tmp_path}/c.db"]):
        ran = piped(*args)
        assert ran.code == 2, (args, ran.err)
        no_traceback(ran.err)
        assert len(ran.err.strip().splitlines()) <= 2 and ran.err.startswith("error: "), ran.err


# -- runs ----------------------------------------------------------------------------------------


def _run(tmp: Path, run_id: str) -> None:
    route = tmp / "r.yaml"
    route.write_text(EXAMPLE_ROUTE)
    leads = tmp / "leads.csv"
    leads.write_text("id,name\n1,a\n2,b\n")
    ran = piped("run", str(route), str(leads), "-o", str(tmp / f"{run_id}.csv"), "--run-id", run_id,
                "--checkpoint", f"sqlite:///{tmp / 'ck.db'}")
    assert ran.code == 0, ran.err


def test_runs_list_prune_and_delete(tmp_path: Path) -> None:
    ck = f"sqlite:///{tmp_path / 'ck.db'}"
    for rid in ("old-run", "new-run", "third-run"):
        _run(tmp_path, rid)
    with sqlite3.connect(tmp_path / "ck.db") as db:  # age one run by 40 days
        db.execute("UPDATE run_meta SET updated_at = ? WHERE run_id = 'old-run'", (time.time() - 40 * 86400,))
    listing = piped("runs", "--checkpoint", ck)
    assert listing.code == 0
    lines = [ln for ln in listing.out.splitlines() if ln.endswith("-run") or "-run " in ln]
    assert len(lines) == 3 and all("complete" in ln and "succeeded 2" in ln and "demo" in ln for ln in lines)
    rows = json.loads(piped("runs", "--checkpoint", ck, "--json").out)
    assert {r["run_id"] for r in rows} == {"old-run", "new-run", "third-run"}
    assert all(r["cost"] == 0 and r["counts"] == {"succeeded": 2} and r["input"].endswith("leads.csv") for r in rows)
    dry = piped("runs", "prune", "--older-than", "30d", "--dry-run", "--checkpoint", ck)
    assert dry.code == 0 and "would delete 1 run(s)" in dry.out and "old-run" in dry.out
    pruned = piped("runs", "prune", "--older-than", "30d", "--checkpoint", ck)
    assert pruned.code == 0 and "deleted 1 run(s)" in pruned.out
    left = {r["run_id"] for r in json.loads(piped("runs", "--checkpoint", ck, "--json").out)}
    assert left == {"new-run", "third-run"}
    assert piped("report", "old-run", "--checkpoint", ck).code == 2
    gone = piped("runs", "delete", "third-run", "--checkpoint", ck)
    assert gone.code == 0 and "deleted 1 run(s): third-run" in gone.out
    missing = piped("runs", "delete", "nope", "--checkpoint", ck)
    assert missing.code == 2 and "no run 'nope'" in missing.err
    with sqlite3.connect(tmp_path / "ck.db") as db:
        assert db.execute("SELECT count(*) FROM lead_state WHERE run_id != 'new-run'").fetchone() == (0,)
    on_tty = on_terminal("runs", "--checkpoint", ck, columns=80)
    assert on_tty.code == 0 and "new-run" in on_tty.text


# -- logging -------------------------------------------------------------------------------------


def test_log_format_json_to_a_file(tmp_path: Path) -> None:
    log = tmp_path / "log" / "ws.jsonl"
    (tmp_path / "loggy.py").write_text(
        "import logging\nfrom waystation import hookimpl\nWAYSTATION_API='>=1,<2'\n"
        "@hookimpl\ndef register_stations():\n"
        "    logging.getLogger('waystation.engine').warning('retrying %s', 'X', extra={'station': 'X', "
        "'lead_id': 'L1', 'attempt': 2, 'category': 'timeout'})\n    return []\n")
    env = env_for("loggy,longnames")
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    ran = piped("--log-format", "json", "--log-file", str(log), "stations", env=env)
    assert ran.code == 0 and "retrying" not in ran.err
    [rec] = [json.loads(line) for line in log.read_text().splitlines()]
    assert rec["message"] == "retrying X" and rec["level"] == "warning"
    assert (rec["station"], rec["lead_id"], rec["attempt"], rec["category"]) == ("X", "L1", 2, "timeout")
    quiet = piped("-q", "stations", env=env)
    assert "retrying" not in quiet.err
    text = piped("stations", env=env)
    assert "retrying X [station=X lead_id=L1 attempt=2 category=timeout]" in text.err


# -- init ----------------------------------------------------------------------------------------


def test_init_writes_a_starter_project_and_keeps_what_exists(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    ran = piped("init", str(target))
    assert ran.code == 0, ran.err
    for rel in ("routes/free-only.yaml", "routes/hybrid-smart.yaml", "examples/leads.csv",
                "examples/dnc/internal.txt", "README.md", ".gitignore"):
        assert (target / rel).is_file(), rel
    env_example = (target / ".env.example").read_text()
    assert "WAYSTATION_LONG_API_KEY=" in env_example and "# The vendor key." in env_example
    assert "WAYSTATION_LONG_THRESHOLD" not in env_example  # neither secret nor required
    (target / "routes" / "free-only.yaml").write_text("# mine\n")
    again = piped("init", str(target))
    assert again.code == 0 and "kept" in again.out
    assert (target / "routes" / "free-only.yaml").read_text() == "# mine\n"
    (tmp_path / "afile").write_text("x")
    refused = piped("init", str(tmp_path / "afile"))
    assert refused.code == 2 and "is a file" in refused.err


# -- defects named by the issue ------------------------------------------------------------------


def test_limit_progress_ends_at_100_percent_and_no_empty_rejects_file(tmp_path: Path) -> None:
    route = tmp_path / "noop.yaml"
    route.write_text("name: noop\nsteps:\n  - station: Noop\n")
    leads = tmp_path / "leads.csv"
    leads.write_text("id,name\n" + "".join(f"L{i},Person {i}\n" for i in range(195)))
    (tmp_path / "out.rejects.jsonl").write_text('{"stale": true}\n')  # left by an earlier run
    ran = on_terminal("run", str(route), str(leads), "--limit", "50", "-o", str(tmp_path / "out.csv"),
                      "--checkpoint", f"sqlite:///{tmp_path / 'ck.db'}", columns=120, env=env_for("fakevendor"))
    assert ran.code == 0, ran.text
    bars = [ln for ln in ran.text.replace("\r", "\n").splitlines() if "leads/s" in ln]
    assert bars and "100%" in bars[-1], bars[-3:]
    assert "50 leads" in bars[-1]
    assert not (tmp_path / "out.rejects.jsonl").exists()
    assert "rejects: none" in ran.text
    no_traceback(ran.text)


# -- one spelling per concept; old spellings warn for one release ---------------------------------


def test_old_route_key_still_works_with_a_warning(tmp_path: Path) -> None:
    route = tmp_path / "r.yaml"
    route.write_text("name: r\nvalidate: strict\nsteps:\n  - station: Short\n")
    ran = piped("check", str(route))
    assert ran.code == 0, ran.err
    assert f"warning: {route}:2:1: 'validate' is deprecated" in ran.err and "write 'validation'" in ran.err
    route.write_text("name: r\nvalidation: strict\nsteps:\n  - station: Short\n")
    clean = piped("check", str(route))
    assert clean.code == 0 and "deprecated" not in clean.err
    route.write_text("name: r\nvalidation: strict\nvalidate: off\nsteps:\n  - station: Short\n")
    both = piped("check", str(route))
    assert both.code == 2 and "keep 'validation'" in both.err
    route.write_text("name: r\nvalidaton: strict\nsteps:\n  - station: Short\n")
    typo = piped("check", str(route))
    assert typo.code == 2 and "unknown key 'validaton' (did you mean 'validation'?)" in typo.err


def test_planned_step_uses_is_a_deprecated_alias_of_optional() -> None:
    from longnames import Short
    from waystation import PluginHost, compile_route
    from waystation.route import Route

    host = PluginHost()
    host.add_station(Short)
    plan = compile_route(Route.from_text("name: r\nsteps:\n  - station: Short\n    condition: city exists\n"), host)
    step = plan.steps[0]
    assert step.optional == ("city",)
    with pytest.warns(DeprecationWarning, match="optional"):
        assert step.uses == ("city",)


@pytest.mark.redis
def test_redis_url_is_the_spelling_and_redis_still_works_with_a_warning() -> None:
    from services import REDIS_URL

    new = piped("breaker", "status", "--redis-url", REDIS_URL, "--prefix", "wsfd-none", "--json")
    assert new.code == 0 and json.loads(new.out) == [] and "deprecated" not in new.err
    old = piped("breaker", "status", "--redis", REDIS_URL, "--prefix", "wsfd-none", "--json")
    assert old.code == 0 and json.loads(old.out) == []
    assert "--redis is deprecated" in old.err and "use --redis-url" in old.err


@pytest.mark.redis
def test_breaker_reset_of_an_unknown_station_is_an_error() -> None:
    from services import REDIS_URL

    ran = piped("breaker", "reset", "NoSuchStation", "--redis-url", REDIS_URL, "--prefix", "wsfd-none")
    assert ran.code == 2, ran.err
    assert "no station 'NoSuchStation' is installed and no shared breaker has state for it" in ran.err
    assert "closed" not in ran.out


@pytest.mark.parametrize("columns", [80, 120, 200])
def test_run_report_keeps_station_names_whole(tmp_path: Path, columns: int) -> None:
    route = tmp_path / "r.yaml"
    route.write_text(f"name: long\nsteps:\n  - station: {NAMES[0]}\n  - station: {NAMES[1]}\n  - station: Short\n")
    leads = tmp_path / "leads.csv"
    leads.write_text("id,first_name,last_name,phone\n1,Ada,Lovelace,+12125550123\n")
    args = ("run", str(route), str(leads), "-o", str(tmp_path / "out.csv"), "--checkpoint",
            f"sqlite:///{tmp_path / 'ck.db'}", "--no-progress")
    ran = on_terminal(*args, columns=columns)
    assert ran.code == 0, ran.text
    for name in NAMES:
        assert name in ran.text
    table = [line for line in ran.text.splitlines() if line[:1] in "┏┃┡│└"]
    assert table and max(len(line) for line in table) <= columns
    piped_run = piped(*args[:-1])
    assert piped_run.code == 0
    lines = piped_run.out.splitlines()
    for name in NAMES:
        [row] = [ln for ln in lines if ln.startswith(name + " ")]
        assert "…" not in row


def test_route_text_is_never_read_as_markup_on_a_terminal(tmp_path: Path) -> None:
    route = tmp_path / "r.yaml"
    route.write_text("name: '[red]evil[/red] [bold]x'\nsteps:\n  - station: Short\n")
    leads = tmp_path / "leads.csv"
    leads.write_text("id\n1\n")
    for args in (["check", str(route)],
                 ["run", str(route), str(leads), "--dry-run", "--checkpoint", f"sqlite:///{tmp_path}/c.db"]):
        ran = on_terminal(*args, columns=120, env=env_for("longnames"))
        assert ran.code == 0, ran.text
        assert "[red]evil[/red] [bold]x" in ran.text, ran.text
