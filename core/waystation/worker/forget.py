"""``waystation forget`` for worker runs: a person's results, held leads, dead-letter records, rejected rows
and queued messages (in the queue and in the dead-letter queue) are erased from the fleet's Redis.

It runs when ``--checkpoint`` names the fleet's checkpoint store (``redis://...?prefix=<prefix>:ck``,
the layout :class:`~waystation.worker.config.WorkerConfig` uses): the fleet's keys are under
``<prefix>``. Lead states themselves are erased by the core's checkpoint part of the same command.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from waystation.forget import Erasure, ForgetRequest


def fleet_of(checkpoint: str | None) -> tuple[str, str] | None:
    """``(redis url, fleet prefix)`` when ``checkpoint`` is a worker fleet's checkpoint store."""
    if not checkpoint:
        return None
    parts = urlsplit(checkpoint)
    if parts.scheme.lower() not in ("redis", "rediss", "unix"):
        return None
    prefix = (parse_qs(parts.query).get("prefix") or [""])[-1]
    if not prefix.endswith(":ck"):
        return None
    return urlunsplit(parts._replace(query="")), prefix[: -len(":ck")]


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def forget_worker_runs(request: ForgetRequest) -> list[Erasure]:
    """Erase the person from every worker run under the fleet prefix (see the module docstring)."""
    fleet = fleet_of(request.checkpoint)
    if fleet is None:
        return []
    url, prefix = fleet
    import redis.asyncio as aioredis

    from waystation.worker.state import RunKeys, list_runs

    client = aioredis.Redis.from_url(url)
    counts = {"results": 0, "held leads": 0, "dead-letter records": 0, "rejected rows": 0, "queued messages": 0}
    try:
        for run_id in await list_runs(client, prefix):
            keys = RunKeys(prefix, run_id)
            gone: list[str] = []
            async for lid, body in client.hscan_iter(keys.results, count=500):
                result = json.loads(body)
                if request.matches(_text(lid), result.get("data")):
                    gone.append(_text(lid))
            counts["results"] += len(gone)
            held: list[str] = []
            async for lid, body in client.hscan_iter(keys.held, count=500):
                record = json.loads(body)
                if request.matches(_text(lid), record.get("data"), record.get("input")):
                    held.append(_text(lid))
            counts["held leads"] += len(held)
            dead = [lid for lid in (_text(k) for k in await client.hkeys(keys.dead)) if request.matches(lid)]
            counts["dead-letter records"] += len(dead)
            rows = [json.loads(raw) for raw in await client.lrange(keys.rejects, 0, -1)]
            rejected = [i for i, row in enumerate(rows) if request.matches(None, row.get("input"), row.get("raw"))]
            counts["rejected rows"] += len(rejected)
            if not request.dry_run:
                pipe = client.pipeline(transaction=True)
                if gone:
                    pipe.hdel(keys.results, *gone)
                for lid in held:  # the lead stays counted as held (not done), its content goes
                    pipe.hset(keys.held, lid, json.dumps({"status": "held", "cause": "erased",
                                                          "reason": "erased on request (waystation forget)"}))
                if dead:
                    pipe.hdel(keys.dead, *dead)
                for i in rejected:  # the row stays counted, its content goes
                    pipe.lset(keys.rejects, i, json.dumps({"line": rows[i].get("line"), "reason": "erased"}))
                await pipe.execute()
        # message bodies: queued, delayed and dead-lettered (any queue of the fleet)
        async for msgs_key in client.scan_iter(f"{prefix}:dq:*.msgs", count=500):
            doomed = []
            async for mid, raw in client.hscan_iter(msgs_key, count=500):
                try:
                    args = json.loads(raw).get("args") or []
                except ValueError:
                    continue
                if len(args) >= 3 and request.matches(args[1], args[2]):
                    doomed.append(mid)
            counts["queued messages"] += len(doomed)
            if doomed and not request.dry_run:
                await client.hdel(msgs_key, *doomed)
    finally:
        await client.aclose()
    where = f"worker runs under {prefix!r}"
    return [Erasure(where, what, n) for what, n in counts.items() if n]
