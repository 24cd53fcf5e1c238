"""Memory stays flat: 200,000 generated leads streamed through a no-op route by `waystation run`.

Peak RSS of the subprocess is sampled with psutil from the test (never the wall clock). The bound
is fixed: 128 MB. Python with the core imported and a SQLite store takes about 60-70 MB here;
keeping every lead's result (a few hundred bytes to a few KB each) for 200,000 leads would take
hundreds of MB, so a leak of results, a growing reorder buffer or an unbounded queue fails it.
"""

from __future__ import annotations

import csv
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from fakevendor import WAYSTATION, cli_env

pytestmark = pytest.mark.slow

N = 200_000
RSS_BOUND = 128 * 1024 * 1024


def test_200k_leads_stream_in_flat_memory(tmp_path: Path) -> None:
    inp = tmp_path / "leads.csv"
    with inp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "city", "state", "zipcode", "notes"])
        for i in range(N):
            w.writerow([f"L{i:07d}", f"Person Number {i}", "Springfield", "MA", "01103", "x" * (i % 97)])
    route = tmp_path / "noop.yaml"
    route.write_text("name: noop\nsteps:\n  - station: Noop\n")
    out = tmp_path / "out.csv"
    proc = subprocess.Popen(
        [*WAYSTATION, "run", str(route), str(inp), "-o", str(out), "-c", "128", "--no-progress",
         "--checkpoint", f"sqlite:///{tmp_path / 'ck.db'}?synchronous=normal"],
        env=cli_env(WAYSTATION_EXTRA_PLUGINS="fakevendor:NOOP_ONLY"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    samples = 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
            samples += 1
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    stdout, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    assert samples > 10
    assert f"leads: {N} (succeeded {N})" in stdout
    with out.open() as f:
        assert sum(1 for _ in f) == N + 1
    print(f"peak RSS {peak / 2**20:.1f} MB over {samples} samples for {N:,} leads")
    assert peak < RSS_BOUND, f"peak RSS {peak / 2**20:.1f} MB"
