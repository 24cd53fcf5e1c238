"""Engine overhead per station-run against a hand-written asyncio baseline, in the same process.

A 7-station linear no-op route over N leads (default 20,000) with 200 in flight, run on the engine
(default hooks on) and on a hand-written chain of 7 awaits. Prints the median of 3 runs of each and
the engine's overhead per station-run in microseconds. A benchmark, not a test.

    python bench/overhead.py [--leads 20000] [--in-flight 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from waystation import Engine, Outcome, Station, StepContext

STEPS = 7


def make_station(i: int) -> type[Station]:
    field = f"f{i}"
    outcome = Outcome({field: i})

    async def process(self: Station, ctx: StepContext) -> Outcome:
        return outcome

    return type(f"Noop{i}", (Station,), {
        "name": f"Noop{i}", "provides": {field: int}, "requires": (f"f{i - 1}",) if i else (),
        "process": process, "__doc__": "no-op", "timeout": None,
    })


STATIONS = [make_station(i) for i in range(STEPS)]
ROUTE = "name: overhead\nsteps:\n" + "".join(f"  - station: Noop{i}\n" for i in range(STEPS))


async def bounded(n: int, in_flight: int, one: Any) -> None:
    sem = asyncio.Semaphore(in_flight)

    async def wrapped(i: int) -> None:
        async with sem:
            await one(i)

    # feed in chunks to keep the number of pending tasks bounded
    chunk = in_flight * 4
    for start in range(0, n, chunk):
        await asyncio.gather(*(wrapped(i) for i in range(start, min(n, start + chunk))))


async def baseline(n: int, in_flight: int) -> float:
    async def step(data: dict[str, Any], i: int) -> dict[str, Any]:
        return {f"f{i}": i}

    async def one(i: int) -> None:
        data: dict[str, Any] = {"id": i}
        for s in range(STEPS):
            data.update(await step(data, s))

    t = time.perf_counter()
    await bounded(n, in_flight, one)
    return time.perf_counter() - t


async def engine_run(n: int, in_flight: int) -> float:
    engine = Engine.from_text(ROUTE, STATIONS)

    async def one(i: int) -> None:
        result = await engine.run({"id": i}, lead_id=str(i))
        assert result.status == "succeeded"

    t = time.perf_counter()
    await bounded(n, in_flight, one)
    elapsed = time.perf_counter() - t
    await engine.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    base, eng = [], []
    for _ in range(args.repeat):
        base.append(asyncio.run(baseline(args.leads, args.in_flight)))
        eng.append(asyncio.run(engine_run(args.leads, args.in_flight)))
    runs = args.leads * STEPS
    b, e = statistics.median(base), statistics.median(eng)
    print(f"{args.leads} leads x {STEPS} stations, {args.in_flight} in flight, median of {args.repeat}")
    print(f"baseline (hand-written asyncio): {b:.3f}s = {b / runs * 1e6:.2f} us per station-run")
    print(f"waystation engine:               {e:.3f}s = {e / runs * 1e6:.2f} us per station-run")
    print(f"engine overhead: {(e - b) / runs * 1e6:.2f} us per station-run (ratio {e / b:.1f}x baseline)")


if __name__ == "__main__":
    main()
