"""CPU per lead: an HTTP client built per call vs the process-wide pooled client of waystation.http.

A fake vendor (a separate process on 127.0.0.1, so its CPU is not counted) answers a Telnyx-like
JSON body. This process looks up ``--leads`` numbers, ``--concurrency`` at a time, and reports the
CPU time it spent (``time.process_time()``) per lead:

- ``per-call client``: ``async with httpx.AsyncClient() as c: await c.get(...)`` for every lead —
  what a station that builds its client per call (or per engine, with an engine per lead) costs;
- ``shared VendorClient``: one :class:`waystation.http.VendorClient` (the pooled client every
  station of a name shares), capped read and pydantic parsing included;
- ``engine + TelnyxGatekeepStation`` (when waystation-telnyx is installed): whole leads through the
  engine (budget, breaker, rate limit, outcome checks) on the shared client.

    python bench/http_clients.py --leads 500 --concurrency 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

BODY = {"data": {"record_type": "number_lookup", "phone_number": "+13125550142", "country_code": "US",
                 "carrier": {"name": "Carrier Inc", "normalized_carrier": "Carrier", "type": "mobile",
                             "mobile_country_code": "310", "mobile_network_code": "260", "error_code": None},
                 "portability": {"ported_status": "N", "line_type": "mobile", "spid_carrier_name": "Carrier Inc"},
                 "caller_name": None, "valid_number": True}}

SERVER = """
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
body = sys.argv[1].encode()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"""


async def measure(name: str, leads: int, concurrency: int, one: Callable[[int], Awaitable[Any]]) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def guarded(i: int) -> None:
        async with sem:
            await one(i)

    await one(-1)  # warm-up (imports, first connection)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(guarded(i) for i in range(leads)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    per = cpu / leads * 1000
    print(f"{name:34s} {per:7.2f} ms CPU/lead   {leads / wall:8.1f} leads/s")
    return per


async def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--leads", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=10)
    args = p.parse_args(argv)
    proc = subprocess.Popen([sys.executable, "-c", SERVER, json.dumps(BODY)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        base = f"http://127.0.0.1:{port}/v2"
        await run_all(base, args.leads, args.concurrency)
    finally:
        proc.terminate()
        proc.wait(5)


async def run_all(base: str, leads: int, concurrency: int) -> None:
    import httpx
    from waystation.http import VendorClient

    async def per_call(i: int) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            resp = await client.get(f"{base}/number_lookup/+13125550142", headers={"Authorization": "Bearer k"})
            json.loads(resp.content)

    print(f"{leads} leads, {concurrency} in flight, fake vendor in another process on 127.0.0.1")
    before = await measure("per-call client (before)", leads, concurrency, per_call)

    shared = VendorClient("BenchStation", base, timeout=10, max_connections=concurrency)
    await shared.open()

    async def pooled(i: int) -> None:
        resp = await shared.get("number_lookup/+13125550142", headers={"Authorization": "Bearer k"})
        resp.json()

    after = await measure("shared VendorClient (after)", leads, concurrency, pooled)
    await shared.aclose()
    print(f"{'ratio per-call / shared':34s} {before / after:7.1f}x")

    try:
        from waystation_telnyx import TelnyxGatekeepStation
    except ImportError:
        return
    from waystation import Engine

    route = (f"name: bench\nsteps:\n  - station: TelnyxGatekeepStation\n    settings: {{base_url: '{base}', "
             "api_key: bench-key-123456, allow_hosts: [127.0.0.1], reject_line_types: []}\n"
             "    rate_limit: {per_second: 100000}\n")
    engine = Engine.from_text(route, [TelnyxGatekeepStation])
    async with engine:
        async def through_engine(i: int) -> None:
            result = await engine.run({"id": str(i), "phone": "+13125550142"})
            assert result.status == "succeeded", result.steps

        await measure("engine + TelnyxGatekeepStation", leads, concurrency, through_engine)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
