"""Sentinel secrets: vendor keys containing ``+``, ``/`` and ``=`` never appear anywhere.

The shipped routes (HYBRID_SMART and the waterfall example, every plugin installed) run against
the fake vendors on 127.0.0.1 through ``waystation run`` at the debug log level (into a log file
and on the terminal), ``waystation report`` (text and JSON), ``waystation stations --json``,
failure paths (a vendor that answers 500 echoing the key it got, a checkpoint URL whose password
is a secret and whose server is down) and the worker (``enqueue`` + ``worker`` over Redis). Then
every file under the test's directory (output, rejects, report, checkpoint database and its WAL,
SQL save database, DNC store, log file), every line printed, and every Redis key the worker wrote
are searched for each secret in every form it could travel in: raw, URL-encoded (``quote`` and
``quote_plus``), base64 (standard and URL-safe, padded or not), JSON-escaped.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import test_hybrid as hybrid
from test_hybrid import LEADS, WATERFALL, Vendors, hand_made_dnc, route_copy, write_leads
from test_hybrid import vendors as vendors  # the fixture: fake vendors on 127.0.0.1
from waystation.testing.services import under_ci
from werkzeug import Request, Response

TELNYX = "tel+nyx/KEY=sentinel0A1B2C=="
RAPID = "rapid+API/sentinel=9f8e7d6c/5b=="
PG_PASSWORD = "pg+pass/sentinel=42"
SECRETS = (TELNYX, RAPID, PG_PASSWORD)


def forms(secret: str) -> set[str]:
    raw = secret.encode()
    out = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), json.dumps(secret)[1:-1]}
    for enc in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        out |= {enc.decode(), enc.decode().rstrip("=")}
    return out


def assert_clean(where: str, data: bytes | str) -> None:
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    for secret in SECRETS:
        for form in forms(secret):
            assert form not in text, f"{where} holds a form of a secret: {form!r}"


def scan_files(root: Path) -> int:
    n = 0
    for path in sorted(root.rglob("*")):
        if path.is_file():
            assert_clean(str(path), path.read_bytes())
            n += 1
    return n


@pytest.fixture
def sentinel(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The fake vendors check the sentinel keys; the environment holds them."""
    monkeypatch.setattr(hybrid, "TELNYX_KEY", TELNYX)
    monkeypatch.setattr(hybrid, "RAPIDAPI_KEY", RAPID)
    yield {**os.environ, "TELNYX_API_KEY": TELNYX, "RAPIDAPI_KEY": RAPID, "NO_COLOR": "1",
           "WAYSTATION_LOG_PII": "0"}


def waystation(*args: str, env: dict[str, str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "waystation", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_clean(f"stdout of {args[:2]}", proc.stdout)
    assert_clean(f"stderr of {args[:2]}", proc.stderr)
    return proc


PG_URL = f"postgresql://postgres:{quote(PG_PASSWORD, safe='')}@127.0.0.1:5432/test"


def save_to_postgres(route: Path, schema: str) -> bool:
    """Point the route's SQL save at PostgreSQL, the URL (with a secret password: the local server
    trusts 127.0.0.1, so any password connects) coming from ``WAYSTATION_SQL_URL`` as in production;
    ``False`` when PostgreSQL is not there."""
    import yaml

    try:
        import psycopg

        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=3):
            pass
    except Exception:  # a laptop without PostgreSQL: the save goes to SQLite instead
        if under_ci():
            raise
        return False
    spec = yaml.safe_load(route.read_text())
    for step in spec["steps"]:
        if step["station"] == hybrid.SAVE:
            step["settings"] = {"schema_name": schema, "table": "sentinel"}
    route.write_text(yaml.safe_dump(spec, sort_keys=False))
    return True


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.parametrize("source", ["hybrid-smart", "waterfall-example"])
def test_run_report_and_listings_never_show_a_key(vendors: Vendors, sentinel: dict[str, str], tmp_path: Path,
                                                  source: str) -> None:
    route = route_copy(vendors, tmp_path, hand_made_dnc(tmp_path),
                       source=hybrid.ROUTE if source == "hybrid-smart" else WATERFALL)
    schema = f"ws_sentinel_{uuid.uuid4().hex[:10]}"
    on_pg = source == "hybrid-smart" and save_to_postgres(route, schema)
    if on_pg:
        sentinel = {**sentinel, "WAYSTATION_SQL_URL": PG_URL}
    leads = write_leads(tmp_path / "leads.csv", LEADS)
    ck = f"sqlite:///{tmp_path / 'checkpoints.db'}"
    try:
        proc = waystation("--log-level", "DEBUG", "--log-file", str(tmp_path / "debug.log"), "run", str(route),
                          str(leads), "-o", str(tmp_path / "out.csv"), "--checkpoint", ck, "--report",
                          str(tmp_path / "report.json"), "--no-progress", "--run-id", "sentinel-run",
                          env=sentinel, cwd=tmp_path)
        waystation("-vv", "report", "sentinel-run", "--checkpoint", ck, env=sentinel, cwd=tmp_path)
        waystation("report", "sentinel-run", "--checkpoint", ck, "--json", env=sentinel, cwd=tmp_path)
        waystation("stations", "--json", env=sentinel, cwd=tmp_path)
        waystation("check", str(route), env=sentinel, cwd=tmp_path)
    finally:
        if on_pg:
            drop_schema(schema)
    # the vendors were really called with the keys (so the keys were in the process, in memory)
    assert vendors.telnyx_lookups() and vendors.rapid_searches() and not vendors.wrong_key
    assert "DEBUG" in (tmp_path / "debug.log").read_text() or "debug" in proc.stderr.lower()
    assert scan_files(tmp_path) >= 6


class EchoingTelnyx(Vendors):
    """A Telnyx that fails with 500 and echoes the Authorization header it got in its body."""

    def _telnyx(self, request: Request) -> Response:
        body = {"errors": [{"code": "10001", "title": "Internal error",
                            "detail": f"request with {request.headers.get('Authorization')} failed; "
                                      f"key={quote(TELNYX, safe='')}"}]}
        return Response(json.dumps(body), status=500, content_type="application/json")


@pytest.fixture
def echoing() -> Iterator[Vendors]:
    hybrid._require_plugins()
    v = EchoingTelnyx()
    v.start()
    try:
        yield v
    finally:
        v.stop()


def test_failure_paths_never_show_a_key(echoing: Vendors, sentinel: dict[str, str], tmp_path: Path) -> None:
    route = route_copy(echoing, tmp_path, hand_made_dnc(tmp_path))
    leads = write_leads(tmp_path / "leads.csv", LEADS)
    ck = f"sqlite:///{tmp_path / 'checkpoints.db'}"
    waystation("--log-level", "DEBUG", "--log-file", str(tmp_path / "debug.log"), "run", str(route), str(leads),
               "-o", str(tmp_path / "out.csv"), "--checkpoint", ck, "--no-progress", "--run-id", "failing",
               env=sentinel, cwd=tmp_path, check=False)
    assert echoing.telnyx_lookups()  # the failing vendor was called, and said the key back
    rejects = (tmp_path / "out.rejects.jsonl").read_text() if (tmp_path / "out.rejects.jsonl").exists() else ""
    out = (tmp_path / "out.csv").read_text()
    assert "500" in out + rejects or "server_error" in out + rejects
    waystation("report", "failing", "--checkpoint", ck, "--json", env=sentinel, cwd=tmp_path)
    # a checkpoint store whose URL holds a secret password, on a server that is down
    down = f"redis://:{quote(PG_PASSWORD, safe='')}@127.0.0.1:1/0?password={quote(PG_PASSWORD, safe='')}"
    proc = waystation("run", str(route), str(leads), "-o", str(tmp_path / "out2.csv"), "--checkpoint", down,
                      "--no-progress", env=sentinel, cwd=tmp_path, check=False)
    assert proc.returncode != 0
    scan_files(tmp_path)


@pytest.mark.redis
def test_the_worker_path_never_shows_a_key(vendors: Vendors, sentinel: dict[str, str], tmp_path: Path) -> None:
    import redis

    route = route_copy(vendors, tmp_path, hand_made_dnc(tmp_path))
    leads = write_leads(tmp_path / "leads.csv", LEADS)
    tag = uuid.uuid4().hex[:10]
    url = "redis://127.0.0.1:6379/0"
    fleet = ["--redis-url", url, "--prefix", f"wstest-{tag}", "--queue", f"wstest-{tag}"]
    client = redis.Redis.from_url(url)
    try:
        waystation("enqueue", str(route), str(leads), *fleet, "--ttl", "600", env=sentinel, cwd=tmp_path)
        waystation("--log-level", "DEBUG", "worker", *fleet, "--ttl", "600", "--idle-exit", "2", "--concurrency", "4",
                   env=sentinel, cwd=tmp_path)
        keys = list(client.scan_iter(match=f"wstest-{tag}*"))
        assert keys
        for key in keys:
            kind = client.type(key)
            if kind == b"stream":
                dump = repr(client.xrange(key))
            elif kind == b"hash":
                dump = repr(client.hgetall(key))
            elif kind == b"zset":
                dump = repr(client.zrange(key, 0, -1))
            elif kind == b"list":
                dump = repr(client.lrange(key, 0, -1))
            else:
                dump = repr(client.dump(key))
            assert_clean(f"redis key {key!r}", dump)
        assert vendors.telnyx_lookups()
    finally:
        for key in client.scan_iter(match=f"wstest-{tag}*"):
            client.delete(key)
        client.close()
    scan_files(tmp_path)
