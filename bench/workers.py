"""Worker throughput: leads/s with 1, 2 and 4 ``waystation worker`` processes, as ratios to one.

A route of ``--stations`` stations (default 3), each waiting 20 ms on a fake vendor (an asyncio
HTTP server on 127.0.0.1 in a process of its own, answering after ``--vendor-ms``), over
``--leads`` leads (default 600). The workers are started and seen alive (heartbeat) before the
leads are enqueued; the clock runs from the first enqueue to the last result. CPU per lead is the
workers' user+system CPU time over the run divided by the leads.

``--client per-call`` makes each station build an ``httpx.AsyncClient`` per call (as the shipped
stations did); ``--client shared`` uses the core's pooled client per station
(:class:`waystation.http.VendorClient`, one ``httpx.AsyncClient`` per station per process).
A benchmark, not a test; needs Redis (``--redis``, a fresh key prefix per measurement).

    python bench/workers.py [--leads 600] [--workers 1,2,4] [--concurrency 32] [--client shared]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

VENDOR = textwrap.dedent('''
    import asyncio, sys
    DELAY = float(sys.argv[1]) / 1000
    async def handle(reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                length = 0
                while True:
                    h = await reader.readline()
                    if h in (b"\\r\\n", b"\\n", b""):
                        break
                    if h.lower().startswith(b"content-length:"):
                        length = int(h.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                await asyncio.sleep(DELAY)
                body = b'{"ok": true}'
                writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: "
                             + str(len(body)).encode() + b"\\r\\n\\r\\n" + body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()
    asyncio.run(main())
''')

STATIONS = textwrap.dedent('''
    """Bench stations: each waits on the fake vendor (one HTTP GET)."""
    import os
    import httpx
    from waystation import Outcome, Station, StationSettings, hookimpl
    from waystation.http import VendorClient

    WAYSTATION_API = ">=1,<2"
    SHARED = os.environ.get("BENCH_CLIENT", "shared") == "shared"

    class VendorSettings(StationSettings):
        base_url: str

    def make(i):
        field = f"v{i}"

        async def open_(self):
            self.client = None
            if SHARED:  # the core's process-wide pooled client of the station (waystation.http)
                self.client = VendorClient(self.name, self.settings.base_url, timeout=30)
                await self.client.open()

        async def close(self):
            if self.client is not None:
                await self.client.aclose()

        async def process(self, ctx):
            if self.client is not None:
                resp = await self.client.get(f"{i}")
                resp.raise_for_status()
            else:
                async with httpx.AsyncClient(base_url=self.settings.base_url, timeout=30) as client:
                    resp = await client.get(f"/{i}")
            return Outcome({field: str(resp.json()["ok"])})

        return type(f"Wait{i}", (Station,), {"name": f"Wait{i}", "provides": {field: str}, "Settings": VendorSettings,
                                             "open": open_, "close": close, "process": process,
                                             "__doc__": "waits on the vendor", "timeout": 30.0})

    ALL = [make(i) for i in range(int(os.environ.get("BENCH_STATIONS", "3")))]

    @hookimpl
    def register_stations():
        return ALL
''')


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def measure(args: argparse.Namespace, workers: int, vendor_url: str, tmp: Path) -> dict[str, Any]:
    import redis
    from waystation.plugins import PluginHost
    from waystation.worker.config import WorkerConfig
    from waystation.worker.runs import enqueue_file

    prefix = f"wsbench-{uuid.uuid4().hex[:8]}"
    cfg = WorkerConfig(redis_url=args.redis, prefix=prefix, queue=prefix)
    client = redis.Redis.from_url(args.redis)
    env = {**os.environ, "PYTHONPATH": str(tmp) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "WAYSTATION_EXTRA_PLUGINS": "benchstations", "WAYSTATION_LOAD_PLUGINS": "",
           "BENCH_CLIENT": args.client, "BENCH_STATIONS": str(args.stations)}
    procs = [subprocess.Popen([sys.executable, "-m", "waystation", "worker", "--redis-url", args.redis,
                               "--prefix", prefix, "--queue", prefix, "--concurrency", str(args.concurrency)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)]
    try:
        deadline = time.monotonic() + 60
        while len(list(client.scan_iter(f"{prefix}:worker:*"))) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start")
            time.sleep(0.05)
        route = tmp / "route.yaml"
        route.write_text("name: bench\nsteps:\n" + "".join(
            f"  - station: Wait{i}\n    settings: {{base_url: \"{vendor_url}\"}}\n" for i in range(args.stations)))
        leads = tmp / "leads.csv"
        leads.write_text("id,name\n" + "".join(f"L{i},Ada\n" for i in range(args.leads)))
        os.environ.update({k: env[k] for k in ("WAYSTATION_EXTRA_PLUGINS", "BENCH_CLIENT", "BENCH_STATIONS")})
        sys.path.insert(0, str(tmp))
        host = PluginHost()
        host.load_extra_plugins("benchstations")
        cpu0 = sum(cpu_seconds(p.pid) for p in procs)
        t0 = time.perf_counter()
        run_id = enqueue_file(cfg, route, leads, host=host).run_id
        results = f"{prefix}:run:{{{run_id}}}:results"
        while client.hlen(results) < args.leads:
            time.sleep(0.02)
        elapsed = time.perf_counter() - t0
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu0
        failed = sum(1 for v in client.hvals(results) if json.loads(v)["status"] != "succeeded")
        return {"workers": workers, "leads_per_s": args.leads / elapsed, "elapsed": elapsed,
                "cpu_ms_per_lead": 1000 * cpu / args.leads, "failed": failed}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i:i + 500])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leads", type=int, default=600)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--stations", type=int, default=3)
    ap.add_argument("--vendor-ms", type=float, default=20.0)
    ap.add_argument("--client", choices=["shared", "per-call"], default="shared")
    ap.add_argument("--redis", default=os.environ.get("WAYSTATION_TEST_REDIS", "redis://127.0.0.1:6379/0"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "benchstations.py").write_text(STATIONS)
        vendor = subprocess.Popen([sys.executable, "-c", VENDOR, str(args.vendor_ms)], stdout=subprocess.PIPE,
                                  text=True)
        try:
            assert vendor.stdout is not None
            url = f"http://127.0.0.1:{vendor.stdout.readline().strip()}"
            rows = [measure(args, int(w), url, tmp) for w in args.workers.split(",")]
        finally:
            vendor.terminate()
            vendor.wait()
    base = rows[0]["leads_per_s"]
    print(f"{args.leads} leads, {args.stations} stations x {args.vendor_ms:g} ms vendor wait, concurrency "
          f"{args.concurrency} per worker, HTTP client {args.client}, {os.cpu_count()} CPUs")
    print(f"{'workers':>7} {'leads/s':>9} {'ratio':>6} {'CPU ms/lead':>12} {'failed':>6}")
    for r in rows:
        print(f"{r['workers']:>7} {r['leads_per_s']:>9.1f} {r['leads_per_s'] / base:>5.2f}x "
              f"{r['cpu_ms_per_lead']:>12.2f} {r['failed']:>6}")


if __name__ == "__main__":
    main()
