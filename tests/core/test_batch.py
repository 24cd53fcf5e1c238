"""Batch runs in process: streaming CSV/JSONL, output columns, rejects, report, budget, resume."""

from __future__ import annotations

import csv
import io
import json
import socket
import urllib.request
from pathlib import Path
from typing import Any

import fakevendor
import pytest
from fakevendor import FakeVendor, email_of, lead_number, phone_of
from waystation import RouteError, hookimpl
from waystation.batch import STATUS_COLUMNS, BatchConfig, BatchError, BatchRunner, run_batch
from waystation.plugins import PluginHost
from waystation.report import report_from_store
from waystation.stores import open_store
from waystation.stores.memory import MemoryStore


def host() -> PluginHost:
    h = PluginHost()
    h.register_plugin(fakevendor, "fakevendor")
    return h


def paid_route(tmp: Path, url: str, budget: float | None = None) -> Path:
    p = tmp / "paid.yaml"
    text = "name: paid\n" + (f"budget: {budget}\n" if budget is not None else "") + (
        "steps:\n"
        f"  - station: FakePhoneLookup\n    settings: {{base_url: '{url}'}}\n"
        f"  - station: FakeSkipTrace\n    settings: {{base_url: '{url}'}}\n")
    p.write_text(text)
    return p


def noop_route(tmp: Path, delay: float = 0.0) -> Path:
    p = tmp / "noop.yaml"
    p.write_text(f"name: noop\nsteps:\n  - station: Noop\n    settings: {{delay: {delay}}}\n")
    return p


def write_csv(path: Path, n: int, start: int = 1) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "city"])
        for i in range(start, start + n):
            w.writerow([f"L{i:04d}", f"Person {i}", "Boston"])
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cfg(tmp: Path, route: Path, inp: Path, **kw: Any) -> BatchConfig:
    kw.setdefault("checkpoint", f"sqlite:///{tmp / 'ck.db'}")
    kw.setdefault("output", tmp / "out.csv")
    return BatchConfig(route=route, input=inp, **kw)


async def test_csv_batch_output_and_report_match_the_vendor(tmp_path: Path) -> None:
    with FakeVendor() as vendor:
        inp = write_csv(tmp_path / "leads.csv", 40)
        c = cfg(tmp_path, paid_route(tmp_path, vendor.url), inp, concurrency=8,
                report_path=tmp_path / "report.json")
        res = await run_batch(c, host())
        assert res.exit_code == 0 and res.written == 40
        rows = read_csv(tmp_path / "out.csv")
        assert list(rows[0]) == ["id", "name", "city", "phone", "email", *STATUS_COLUMNS]
        assert [r["id"] for r in rows] == [f"L{i:04d}" for i in range(1, 41)]  # input order
        for r in rows:
            assert r["_status"] == "succeeded" and r["_lead_id"] == r["id"]
            assert r["phone"] == (phone_of(r["id"]) or "")
            assert r["email"] == ((email_of(r["id"]) or "") if phone_of(r["id"]) else "")
        assert not (tmp_path / "out.rejects.jsonl").exists()  # no failed or rejected lead: no empty file

        # the report's figures against what the vendor saw
        rep = res.report
        lookup, trace = rep.station("FakePhoneLookup"), rep.station("FakeSkipTrace")
        assert lookup.runs == vendor.total("lookup") == 40
        assert lookup.hits == sum(1 for i in range(1, 41) if phone_of(f"L{i:04d}"))
        assert trace.runs == vendor.total("trace") == lookup.hits
        assert trace.skipped == {"missing_requirements": 40 - lookup.hits}
        assert trace.hits == sum(1 for i in range(1, 41) if phone_of(f"L{i:04d}") and email_of(f"L{i:04d}"))
        assert lookup.cost == pytest.approx(vendor.total("lookup") * 0.01)
        assert rep.total_cost == pytest.approx(vendor.billed())
        assert lookup.hit_rate == pytest.approx(lookup.hits / lookup.runs)
        assert trace.cost_per_hit == pytest.approx(trace.cost / trace.hits)
        assert lookup.latency_p50 is not None and lookup.latency_p95 is not None
        assert lookup.latency_p50 <= lookup.latency_p95
        assert rep.leads["succeeded"] == 40 and rep.complete
        assert max(vendor.calls["lookup"].values()) == 1
        on_disk = json.loads((tmp_path / "report.json").read_text())
        assert on_disk["stations"][0]["runs"] == 40 and on_disk["leads"]["total"] == 40

        # the same figures rebuilt from the store (what `waystation report` prints)
        store = open_store(c.checkpoint)
        again = await report_from_store(store, res.run_id)
        await store.close()
        for a, b in zip(rep.stations, again.stations, strict=True):
            assert a.model_dump() == b.model_dump()


async def test_bad_csv_rows_are_rejected_with_line_numbers(tmp_path: Path) -> None:
    inp = tmp_path / "bad.csv"
    big = "x" * (10 * 1024 * 1024)
    with inp.open("wb") as f:
        f.write(b"id,name,city\n")
        f.write(b"L0001,Ann,Boston\n")                      # line 2 ok
        f.write(b'L0002,"Bob "quoted" badly,Boston\n')      # line 3 bad quoting
        f.write(b"L0003,Cy\n")                               # line 4 too few fields
        f.write(b"L0004,Di,Boston,extra\n")                  # line 5 too many fields
        f.write(f"L0005,{big},Boston\n".encode())            # line 6 10 MB field
        f.write(b"L0006,Ed \xff\xfe,Boston\n")               # line 7 invalid UTF-8
        f.write(b'L0007,"Multi\nline",Boston\n')             # lines 8-9 ok
        f.write(b"L0008,Flo,Boston,,\n")                     # line 10 ok (trailing empties)
    res = await run_batch(cfg(tmp_path, noop_route(tmp_path), inp), host())
    assert res.exit_code == 0
    rows = read_csv(tmp_path / "out.csv")
    assert [r["_status"] for r in rows] == ["succeeded", "rejected", "rejected", "rejected", "rejected",
                                            "rejected", "succeeded", "succeeded"]
    assert rows[5]["name"] == "Ed \ufffd\ufffd"
    assert rows[6]["name"] == "Multi\nline"
    rejects = read_jsonl(tmp_path / "out.rejects.jsonl")
    assert [r["line"] for r in rejects] == [3, 4, 5, 6, 7]
    reasons = [r["reason"] for r in rejects]
    assert "malformed CSV" in reasons[0]
    assert reasons[1] == "the row has 2 fields, the header has 3"
    assert reasons[2] == "the row has 4 fields, the header has 3"
    assert reasons[3] == "line 6 is 10,485,774 bytes, longer than the limit of 4,194,304 (4 x --max-field-size)"
    assert reasons[4] == "invalid UTF-8 in column 'name' (try --encoding latin-1)"
    assert all(len(r["raw"]) <= 2000 for r in rejects)
    assert res.report.leads["rejected"] == 5 and res.report.leads["succeeded"] == 3


async def test_bad_jsonl_lines_are_rejected(tmp_path: Path) -> None:
    with FakeVendor() as vendor:
        inp = tmp_path / "bad.jsonl"
        with inp.open("wb") as f:
            f.write(b'{"id": "L0001", "name": "Ann"}\n')
            f.write(b'{"id": "L0002", "name": \n')                  # invalid JSON
            f.write(b'["L0003", "Bob"]\n')                           # not an object
            f.write(b'{"id": "L0004", "name": {"first": "Cy"}}\n')  # wrong type
            f.write(b'{"id": "L0005", "city": "Boston"}\n')         # missing required name
            f.write(b'{"id": "L0006", "name": "\xff"}\n')            # invalid UTF-8
            f.write(b"\n")
            f.write(b'{"id": "L0007", "name": "' + b"y" * 2_000_000 + b'"}\n')  # too large
            f.write(b'{"id": 8, "name": "Dee", "age": 41}\n')
        res = await run_batch(cfg(tmp_path, paid_route(tmp_path, vendor.url), inp, output=tmp_path / "o.jsonl"),
                              host())
        out = read_jsonl(tmp_path / "o.jsonl")
        assert [o["_status"] for o in out] == ["succeeded"] + ["rejected"] * 6 + ["succeeded"]
        assert out[-1]["age"] == 41 and out[-1]["_lead_id"] == "8"
        rejects = read_jsonl(tmp_path / "o.rejects.jsonl")
        assert [r["line"] for r in rejects] == [2, 3, 4, 5, 6, 8]
        assert rejects[0]["reason"].startswith("invalid JSON")
        assert rejects[1]["reason"] == "expected a JSON object, got an array"
        assert rejects[2]["reason"].startswith("field 'name' is an object")
        assert rejects[3]["reason"] == "missing required field name"
        assert rejects[4]["reason"].startswith("invalid UTF-8")
        assert "more than the limit" in rejects[5]["reason"]
        assert vendor.total("lookup") == 2  # rejected leads never reached a station
        assert res.report.leads == {"succeeded": 2, "stopped": 0, "held": 0, "failed": 0, "rejected": 6,
                                    "unfinished": 0}


async def test_csv_header_without_a_required_column_is_refused(tmp_path: Path) -> None:
    inp = tmp_path / "leads.csv"
    inp.write_text("id,city\nL1,Boston\n")
    with pytest.raises(RouteError, match=r"requires 'name', which .* does not have; its columns: id, city"):
        await run_batch(cfg(tmp_path, paid_route(tmp_path, "http://127.0.0.1:9"), inp), host())


async def test_batch_budget_is_never_exceeded(tmp_path: Path) -> None:
    with FakeVendor() as vendor:
        inp = write_csv(tmp_path / "leads.csv", 30)
        res = await run_batch(cfg(tmp_path, paid_route(tmp_path, vendor.url), inp, concurrency=10,
                                  budget_total=0.1), host())
        assert vendor.billed() <= 0.1 + 1e-9
        assert res.report.total_cost == pytest.approx(vendor.billed())
        skipped = res.report.station("FakePhoneLookup").skipped.get("budget", 0)
        skipped += res.report.station("FakeSkipTrace").skipped.get("budget", 0)
        assert skipped > 0
        assert res.written == 30


async def test_duplicate_lead_ids_run_once(tmp_path: Path) -> None:
    with FakeVendor() as vendor:
        inp = tmp_path / "dupes.csv"
        inp.write_text("id,name\nL0001,Ann\nL0002,Bob\nL0001,Ann\n,Cy\n,Cy\n")
        res = await run_batch(cfg(tmp_path, paid_route(tmp_path, vendor.url), inp), host())
        rows = read_csv(tmp_path / "out.csv")
        assert len(rows) == 5
        assert rows[0]["_lead_id"] == rows[2]["_lead_id"] == "L0001"
        assert rows[3]["_lead_id"] == rows[4]["_lead_id"] != ""
        assert vendor.calls["lookup"]["L0001"] == 1
        assert vendor.total("lookup") == 3
        assert res.report.station("FakePhoneLookup").runs == 3


async def test_limit_and_jsonl_output(tmp_path: Path) -> None:
    inp = write_csv(tmp_path / "leads.csv", 20)
    res = await run_batch(cfg(tmp_path, noop_route(tmp_path), inp, limit=7, output=tmp_path / "o.jsonl"), host())
    out = read_jsonl(tmp_path / "o.jsonl")
    assert [o["id"] for o in out] == [f"L{i:04d}" for i in range(1, 8)]
    assert set(out[0]) == {"id", "name", "city", *STATUS_COLUMNS}
    assert res.report.complete


async def test_interrupted_run_resumes_with_every_lead_once(tmp_path: Path) -> None:
    inp = write_csv(tmp_path / "leads.csv", 60)
    route = noop_route(tmp_path, delay=0.05)
    h = host()
    runner = BatchRunner(cfg(tmp_path, route, inp, concurrency=4, grace=0.0, flush_every=0.0), h)

    class StopAfter:
        n = 0

        @hookimpl
        def after_lead(self) -> None:
            StopAfter.n += 1
            if StopAfter.n == 10:
                runner.request_stop(2)

    h.pm.register(StopAfter())
    res = await runner.run()
    assert res.exit_code == 130 and res.resume_command and "--resume" in res.resume_command
    first = read_csv(tmp_path / "out.csv")
    assert 0 < len(first) < 60
    store = open_store(f"sqlite:///{tmp_path / 'ck.db'}")
    meta = await store.load_run(res.run_id)
    await store.close()
    assert meta is not None and meta["status"] == "interrupted" and meta["written"] == len(first)

    with (tmp_path / "out.csv").open("a") as f:  # a half-written tail, as after a crash
        f.write("L9999,half")
    res2 = await run_batch(cfg(tmp_path, route, inp, concurrency=4, resume=res.run_id), host())
    assert res2.exit_code == 0 and res2.resumed
    rows = read_csv(tmp_path / "out.csv")
    assert [r["id"] for r in rows] == [f"L{i:04d}" for i in range(1, 61)]
    assert res2.report.leads["succeeded"] == 60 and res2.report.station("Noop").runs == 60
    # the run's history is rebuilt from every saved state: both sessions, each lead once
    from waystation.history import open_history

    history = open_history(f"sqlite:///{tmp_path / 'ck.db'}")
    run = await history.run(res.run_id)
    await history.close()
    assert run is not None and run.finished_at is not None and run.leads == {"succeeded": 60}
    assert run.step("Noop").runs == 60 and run.input_name == str(inp.resolve())


async def test_resume_errors(tmp_path: Path) -> None:
    inp = write_csv(tmp_path / "leads.csv", 3)
    with pytest.raises(BatchError, match="no run 'nope'"):
        await run_batch(cfg(tmp_path, noop_route(tmp_path), inp, resume="nope"), host())
    res = await run_batch(cfg(tmp_path, noop_route(tmp_path), inp, run_id="r1"), host())
    assert res.run_id == "r1"
    with pytest.raises(BatchError, match="already exists"):
        await run_batch(cfg(tmp_path, noop_route(tmp_path), inp, run_id="r1"), host())
    other = write_csv(tmp_path / "other.csv", 3)
    with pytest.raises(BatchError, match="not "):
        await run_batch(cfg(tmp_path, noop_route(tmp_path), other, resume="r1"), host())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_metrics_are_served_without_lead_ids(tmp_path: Path) -> None:
    port = _free_port()
    scraped: list[str] = []

    class Scrape:
        @hookimpl
        def after_batch(self) -> None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                scraped.append(resp.read().decode())

    with FakeVendor() as vendor:
        inp = write_csv(tmp_path / "leads.csv", 12)
        h = host()
        h.pm.register(Scrape())
        await run_batch(cfg(tmp_path, paid_route(tmp_path, vendor.url), inp, metrics_port=port), h)
    text = scraped[0]
    hits = sum(1 for i in range(1, 13) if phone_of(f"L{i:04d}"))
    assert ('waystation_step_runs_total{route="paid",station="FakePhoneLookup",status="succeeded",'
            'step="FakePhoneLookup"} 12.0') in text
    assert f'waystation_step_hits_total{{route="paid",station="FakePhoneLookup",step="FakePhoneLookup"}} {hits}.0' \
        in text
    assert 'waystation_leads_total{route="paid",status="succeeded"} 12.0' in text
    assert "waystation_step_duration_seconds_bucket" in text
    assert "L0001" not in text and "lead_id" not in text
    assert lead_number("L0012") == 12
    # the retry and breaker series are on the same registry
    assert "waystation_step_retries_total" in text or "# TYPE waystation_step_retries counter" in text
    assert "waystation_breaker_transitions" in text


class FlakyStore(MemoryStore):
    """A memory store whose lead saves fail (like a full disk) while ``broken`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.saves_ok = 0
        self.break_after: int | None = None

    async def save(self, run_id: str, lead_id: str, state: dict[str, Any]) -> None:
        if self.break_after is not None and self.saves_ok >= self.break_after:
            raise OSError("disk full")
        await super().save(run_id, lead_id, state)
        self.saves_ok += 1


async def test_a_failing_checkpoint_store_stops_the_batch_and_loses_nothing(tmp_path: Path) -> None:
    inp = write_csv(tmp_path / "leads.csv", 50)
    store = FlakyStore()
    store.break_after = 41
    errors: list[str] = []
    c = cfg(tmp_path, noop_route(tmp_path), inp, concurrency=4, checkpoint="memory://")
    res = await BatchRunner(c, host(), store=store, err=errors.append).run()
    assert res.exit_code == 1 and res.error is not None and "disk full" in res.error
    assert any("stopping the batch" in e for e in errors)
    done = read_csv(tmp_path / "out.csv")
    assert 0 < len(done) < 50 and all(r["_status"] == "succeeded" for r in done)
    store.break_after = None
    c2 = cfg(tmp_path, noop_route(tmp_path), inp, concurrency=4, checkpoint="memory://", resume=res.run_id)
    res2 = await BatchRunner(c2, host(), store=store).run()
    assert res2.exit_code == 0
    assert [r["id"] for r in read_csv(tmp_path / "out.csv")] == [f"L{i:04d}" for i in range(1, 51)]


async def test_failed_leads_go_to_the_rejects_file_with_their_error(tmp_path: Path) -> None:
    with FakeVendor() as vendor:
        route = tmp_path / "fail.yaml"
        route.write_text(
            "name: fail\nsteps:\n"
            f"  - station: FakePhoneLookup\n    settings: {{base_url: '{vendor.url}'}}\n"
            "  - station: FakeSkipTrace\n    on_error: fail\n    settings: {base_url: 'http://127.0.0.1:9'}\n")
        inp = write_csv(tmp_path / "leads.csv", 12)
        res = await run_batch(cfg(tmp_path, route, inp), host())
    rows = read_csv(tmp_path / "out.csv")
    hits = [r["id"] for r in rows if phone_of(r["id"])]
    assert [r["id"] for r in rows if r["_status"] == "failed"] == hits
    assert all("FakeSkipTrace failed" in r["_reason"] for r in rows if r["_status"] == "failed")
    rejects = read_jsonl(tmp_path / "out.rejects.jsonl")
    assert [r["lead_id"] for r in rejects] == hits
    assert [r["line"] for r in rejects] == [int(h[1:]) + 1 for h in hits]
    assert all(r["failed_steps"]["FakeSkipTrace"] for r in rejects)
    trace = res.report.station("FakeSkipTrace")
    assert trace.failed == trace.runs == len(hits) and sum(trace.errors.values()) == len(hits)
    assert res.report.leads["failed"] == len(hits)


async def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=150)
    inp = write_csv(tmp_path / "leads.csv", 30)
    await BatchRunner(cfg(tmp_path, noop_route(tmp_path), inp, progress=True, budget_total=1.0), host(),
                      console=console).run()
    text = buf.getvalue()
    assert "leads/s" in text and "spent $" in text and "30" in text


async def test_resumed_batch_budget_counts_what_was_spent_before(tmp_path: Path) -> None:
    with FakeVendor() as vendor:
        inp = write_csv(tmp_path / "leads.csv", 40)
        route = paid_route(tmp_path, vendor.url)
        h = host()
        runner = BatchRunner(cfg(tmp_path, route, inp, concurrency=2, budget_total=0.2, grace=5.0), h)

        class StopAfter:
            n = 0

            @hookimpl
            def after_lead(self) -> None:
                StopAfter.n += 1
                if StopAfter.n == 6:
                    runner.request_stop(2)

        h.pm.register(StopAfter())
        first = await runner.run()
        assert first.exit_code == 130
        spent_before = vendor.billed()
        assert 0 < spent_before < 0.2
        second = await run_batch(cfg(tmp_path, route, inp, concurrency=2, budget_total=0.2, resume=first.run_id),
                                 host())
        assert second.exit_code == 0
        assert vendor.billed() <= 0.2 + 1e-9  # the resumed run did not get a fresh 0.20
        assert second.report.total_cost == pytest.approx(vendor.billed())
        assert max(vendor.calls["lookup"].values()) == 1
        skipped = second.report.station("FakePhoneLookup").skipped.get("budget", 0)
        assert skipped > 0


async def test_jsonl_to_csv_warns_about_dropped_keys(tmp_path: Path) -> None:
    inp = tmp_path / "leads.jsonl"
    inp.write_text('{"id": "L1", "name": "Ann"}\n{"id": "L2", "name": "Bob", "extra": 1}\n')
    errors: list[str] = []
    await BatchRunner(cfg(tmp_path, noop_route(tmp_path), inp), host(), err=errors.append).run()
    rows = read_csv(tmp_path / "out.csv")
    assert list(rows[0]) == ["id", "name", "noop", *STATUS_COLUMNS]
    assert any("dropped: extra" in e for e in errors)


class BrokenMetaStore(MemoryStore):
    """A memory store whose run-metadata saves fail after ``ok`` of them."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.ok = ok

    async def save_run(self, run_id: str, meta: dict[str, Any]) -> None:
        if self.ok <= 0:
            raise OSError("no space left on device")
        self.ok -= 1
        await super().save_run(run_id, meta)


async def test_a_store_failing_at_an_output_flush_stops_the_batch(tmp_path: Path) -> None:
    inp = write_csv(tmp_path / "leads.csv", 300)
    store = BrokenMetaStore(ok=3)
    errors: list[str] = []
    c = cfg(tmp_path, noop_route(tmp_path, delay=0.001), inp, concurrency=2, checkpoint="memory://",
            flush_every=0.0)
    res = await BatchRunner(c, host(), store=store, err=errors.append).run()
    assert res.exit_code == 1 and res.error is not None and "no space left" in res.error
    assert any("broke off" in e for e in errors)
    store.ok = 10**9
    meta = await store.load_run(res.run_id)
    assert meta is not None and meta["written"] < 300
    res2 = await BatchRunner(cfg(tmp_path, noop_route(tmp_path), inp, checkpoint="memory://",
                                 resume=res.run_id), host(), store=store).run()
    assert res2.exit_code == 0
    assert [r["id"] for r in read_csv(tmp_path / "out.csv")] == [f"L{i:04d}" for i in range(1, 301)]


async def test_empty_csv_is_refused(tmp_path: Path) -> None:
    inp = tmp_path / "empty.csv"
    inp.write_text("")
    with pytest.raises(BatchError, match="empty file"):
        await run_batch(cfg(tmp_path, noop_route(tmp_path), inp), host())
    inp.write_text("id,name\n")  # a header and no row: nothing to do, and that is fine
    res = await run_batch(cfg(tmp_path, noop_route(tmp_path), inp), host())
    assert res.exit_code == 0 and res.written == 0 and res.report.complete


def test_resume_command_never_shows_a_password(tmp_path: Path) -> None:
    url = "redis://:s3cret@127.0.0.1:6379/0"
    c = BatchConfig(route=Path("r.yaml"), input=Path("in put.csv"), checkpoint=url, concurrency=4)
    cmd = BatchRunner(c, host()).command("run-1")
    assert "s3cret" not in cmd and "redis://:***@127.0.0.1:6379/0" in cmd
    assert cmd.startswith("waystation run r.yaml 'in put.csv' -o 'in put.out.csv' --resume run-1")
    assert "--concurrency 4" in cmd
    c.checkpoint_from_env = True
    assert "--checkpoint" not in BatchRunner(c, host()).command("run-1")
