"""`waystation estimate`: the forecast model, and its accuracy against a real run on fake vendors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from costvendor import PricedVendor, Shout, VendorA, VendorB
from toys import make
from waystation.engine import Engine
from waystation.history import RunHistory, StepHistory, open_history
from waystation.history.estimate import forecast, sample_file

HERE = Path(__file__).resolve().parent
WAYSTATION = [sys.executable, "-m", "waystation"]

ROUTE = """\
name: two-provider
steps:
  - station: Shout
  - station: VendorA
    condition: state exists
  - station: VendorB
    fallback: true
    condition: state exists
"""

PRODUCTS = {"a": {"rate": 0.6, "price_hit": 0.01, "price_miss": 0.01},
            "b": {"rate": 0.5, "price_hit": 0.03, "price_miss": 0.005}}


def write_leads(path: Path, numbers: range) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "state"])
        for n in numbers:
            w.writerow([f"L{n:05d}", f"Person {n}", "" if n % 20 == 0 else "CA"])
    return path


def env(vendor_url: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("WAYSTATION_", "COSTVENDOR_"))}
    e["PYTHONPATH"] = str(HERE) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.update(WAYSTATION_EXTRA_PLUGINS="costvendor", WAYSTATION_LOAD_PLUGINS="", COSTVENDOR_URL=vendor_url,
             COLUMNS="200")
    return e


def ws(*args: str, cwd: Path, vendor_url: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*WAYSTATION, *args], cwd=cwd, env=env(vendor_url), text=True, capture_output=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


@pytest.fixture
def vendor() -> Iterator[PricedVendor]:
    with PricedVendor(PRODUCTS) as v:
        yield v


@pytest.mark.slow
def test_estimate_predicts_the_real_run_within_ten_percent(vendor: PricedVendor, tmp_path: Path) -> None:
    route = tmp_path / "route.yaml"
    route.write_text(ROUTE)
    small = write_leads(tmp_path / "small.csv", range(0, 300))
    big = write_leads(tmp_path / "big.csv", range(1000, 4000))
    ck = f"sqlite:///{tmp_path / 'ck.db'}"
    url = vendor.url
    # 1. one run on 300 leads fills the history
    ws("run", str(route), str(small), "--checkpoint", ck, "-c", "32", "--run-id", "first", cwd=tmp_path,
       vendor_url=url)
    calls_before, calls_a_before = vendor.total(), vendor.total("a")
    # 2. the forecast for a different 3,000-lead file: no vendor call
    est = json.loads(ws("estimate", str(route), str(big), "--json", "--checkpoint", ck, cwd=tmp_path,
                        vendor_url=url).stdout)
    assert vendor.total() == calls_before
    assert est["leads"] == 3000 and est["sample"] == 200
    assert {"expected", "low", "high"} <= set(est["total"])
    steps = {s["step"]: s for s in est["steps"]}
    assert set(steps) == {"Shout", "VendorA", "VendorB"}
    for s in est["steps"]:
        assert {"step", "p_run", "expected_calls", "expected_cost", "expected_hits"} <= set(s)
    assert steps["VendorA"]["source"].startswith("history: this route") and not est["no_history"]
    assert est["dominant"] and est["budget_total"] >= est["total"]["high"]
    # 3. the real run
    ws("run", str(route), str(big), "--checkpoint", ck, "-c", "32", "--run-id", "big",
       "--report", str(tmp_path / "big.json"), cwd=tmp_path, vendor_url=url)
    report = json.loads((tmp_path / "big.json").read_text())
    actual = report["total_cost"]
    assert actual == pytest.approx(sum(
        PRODUCTS[p]["price_hit" if vendor.is_hit(p, lead) else "price_miss"] * n
        for p, counter in vendor.calls.items() for lead, n in counter.items() if lead.startswith("L0") and
        int(lead[1:]) >= 1000))
    assert abs(est["total"]["expected"] - actual) <= 0.10 * actual, (est["total"], actual)
    assert est["total"]["low"] <= actual <= est["total"]["high"]
    for st in report["stations"]:
        forecast_calls = steps[st["step"]]["expected_calls"]
        assert abs(forecast_calls - st["runs"]) <= 0.10 * st["runs"], (st["step"], forecast_calls, st["runs"])
    # 4. the report shows the forecast next to the actual figures
    out = ws("report", "big", "--checkpoint", ck, cwd=tmp_path, vendor_url=url).stdout
    assert "forecast vs actual" in out
    rep = json.loads(ws("report", "big", "--checkpoint", ck, "--json", cwd=tmp_path, vendor_url=url).stdout)
    assert rep["forecast"]["total"] == est["total"] and rep["forecast"]["actual_total"] == pytest.approx(actual)
    # 5. the history holds both runs, queryable from the command line
    hist = json.loads(ws("history", "--json", "--checkpoint", ck, cwd=tmp_path, vendor_url=url).stdout)
    assert [h["run_id"] for h in hist] == ["big", "first"]
    assert hist[0]["lead_total"] == 3000 and hist[0]["total_cost"] == pytest.approx(actual)
    listed = json.loads(ws("runs", "--history", "--json", "--checkpoint", ck, cwd=tmp_path, vendor_url=url).stdout)
    assert [h["run_id"] for h in listed] == ["big", "first"]
    one = json.loads(ws("history", "big", "--json", "--checkpoint", ck, cwd=tmp_path, vendor_url=url).stdout)
    steps_hist = {s["step"]: s for s in one["steps"]}
    assert steps_hist["VendorA"]["succeeded"] == vendor.total("a") - calls_a_before
    assert steps_hist["VendorA"]["field_hits"]["phone"] == steps_hist["VendorA"]["hits"]
    assert "VendorB" in ws("history", "big", "--checkpoint", ck, cwd=tmp_path, vendor_url=url).stdout


# ---------------------------------------------------------------------------- the model, in process


def _hist(route: str, step: str, station: str, hits: int, misses: int, cost: float) -> RunHistory:
    fig = StepHistory(step=step, station=station, paid=True, runs=hits + misses, succeeded=hits + misses,
                      hits=hits, misses=misses, patterns={"phone": hits, "": misses}, cost=cost)
    return RunHistory(run_id=f"{route}-{step}", route=route, started_at=1.0, steps=[fig])


LEADS = [{"id": f"L{i}", "name": f"P {i}", "state": "CA"} for i in range(50)]


async def test_history_of_the_route_first_then_any_route_then_prior_then_worst_case(tmp_path: Path) -> None:
    history = open_history(f"sqlite:///{tmp_path / 'h.db'}")
    route = ROUTE.replace("name: two-provider", "name: R")
    engine = Engine.from_text(route, [Shout, VendorA, VendorB])
    # no history at all: worst case, flagged; the costliest of "A always hits" / "A never hits"
    doc = await forecast(engine.plan, LEADS, 1000, history)
    assert set(doc["no_history"]) == {"VendorA", "VendorB"}
    s = {x["step"]: x for x in doc["steps"]}
    assert s["VendorA"]["expected_calls"] == 1000
    assert s["VendorB"]["expected_calls"] == 1000  # A assumed to miss: B is called for every lead
    assert doc["total"]["expected"] == pytest.approx(1000 * (0.01 + 0.03))
    assert doc["total"]["low"] <= 1000 * 0.01 + 1e-9  # the cheapest assignment: A always hits
    # another route's history of the station is used when this route has none
    await history.record(_hist("other", "x", "VendorA", hits=80, misses=20, cost=1.0))
    doc = await forecast(engine.plan, LEADS, 1000, history)
    s = {x["step"]: x for x in doc["steps"]}
    assert s["VendorA"]["source"].startswith("history: any route")
    assert s["VendorB"]["expected_calls"] == pytest.approx(200)
    # this route's history wins
    await history.record(_hist("R", "VendorA", "VendorA", hits=50, misses=50, cost=1.0))
    await history.record(_hist("R", "VendorB", "VendorB", hits=10, misses=40, cost=0.5))
    doc = await forecast(engine.plan, LEADS, 1000, history)
    s = {x["step"]: x for x in doc["steps"]}
    assert s["VendorA"]["source"].startswith("history: this route") and not doc["no_history"]
    assert s["VendorB"]["expected_calls"] == pytest.approx(500)
    assert s["VendorB"]["expected_hits"] == pytest.approx(100)
    assert s["VendorB"]["expected_cost"] == pytest.approx(500 * 0.5 / 50)
    assert s["VendorB"]["cost_per_hit"] == pytest.approx(0.05)
    assert doc["total"]["low"] < doc["total"]["expected"] < doc["total"]["high"]
    await history.close()


async def test_a_declared_prior_and_free_stations_run_for_real(tmp_path: Path) -> None:
    class Priored(VendorA):
        name = "Priored"
        hit_prior = 0.25

    tagger = make("Tagger", {"vip": str}, requires=("state",), value={"vip": "yes"})
    route = """
name: P
steps:
  - station: Tagger
    condition: state == "NY"
  - station: Priored
    condition: vip exists
  - station: VendorB
    fallback: [phone]
"""
    engine = Engine.from_text(route, [tagger, Priored, VendorB])
    leads = [{"id": f"L{i}", "name": "x", "state": "NY" if i % 4 == 0 else "CA"} for i in range(40)]
    doc = await forecast(engine.plan, leads, 400, None)
    s = {x["step"]: x for x in doc["steps"]}
    assert s["Tagger"]["p_run"] == pytest.approx(0.25) and s["Tagger"]["expected_hits"] == pytest.approx(100)
    assert s["Priored"]["source"] == "declared prior" and s["Priored"]["expected_calls"] == pytest.approx(100)
    # B (no history: worst case = always a miss upstream? it has no downstream) runs unless Priored hit
    assert s["VendorB"]["expected_calls"] == pytest.approx(400 - 100 * 0.25)
    assert doc["no_history"] == ["VendorB"]


def test_sample_is_seeded_streamed_and_counts_every_good_record(tmp_path: Path) -> None:
    path = write_leads(tmp_path / "l.csv", range(0, 1000))
    with path.open("a", encoding="utf-8") as f:
        f.write('"unterminated,x,y\n')
    a, good, rejected = sample_file(path, "csv", 50, seed=7)
    b, _, _ = sample_file(path, "csv", 50, seed=7)
    c, _, _ = sample_file(path, "csv", 50, seed=8)
    assert good == 1000 and rejected == 1
    assert a == b and a != c and len(a) == 50
    ids = [r["id"] for r in a]
    assert ids == sorted(ids)  # file order
    small, good, _ = sample_file(path, "csv", 5000, seed=1)
    assert len(small) == good == 1000


async def test_a_station_with_side_effects_is_never_run() -> None:
    import toys

    rec = toys.reset()
    saver = make("Saver", {"saved": bool}, requires=("name",), side_effects=True)
    free = make("Free", {"tag": str}, requires=("name",))
    engine = Engine.from_text("name: S\nsteps:\n  - station: Free\n  - station: Saver\n", [free, saver])
    doc = await forecast(engine.plan, LEADS[:5], 100, None)
    assert rec.calls == ["Free"] * 5  # the free station ran for real, the saver never
    s = {x["step"]: x for x in doc["steps"]}
    assert s["Saver"]["expected_calls"] == 100 and s["Saver"]["source"].startswith("not run (side effects)")
    assert doc["no_history"] == [] and doc["total"]["expected"] == 0
