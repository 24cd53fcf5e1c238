"""A worker run's bookkeeping in Redis: what was queued, what is done, in progress, dead-lettered.

Every ``waystation enqueue`` makes a new **run** (its own run id: checkpoints, results and budget
of two enqueues never mix, so two different people under one lead id each get their own
result). Keys, ``<run>`` in braces so that a run's keys share a cluster slot::

    <prefix>:run:{<run>}:meta      hash: route_name, route (YAML text), leads, rows, rejected,
                                   budget_total, created_at, queue, ttl, sealed (1 once every
                                   lead is queued: only then can the run be finished)
    <prefix>:run:{<run>}:order     list: the lead id of every input row, in input order
                                   (``!rejected:<n>`` for a malformed row: see ``:rejects``)
    <prefix>:run:{<run>}:rejects   list: JSON of each malformed row (line, reason, raw)
    <prefix>:run:{<run>}:results   hash: lead id -> result JSON (status, reason, cost, data)
    <prefix>:run:{<run>}:counts    hash: succeeded / stopped / failed / cost (micro-USD) / duplicates
                                   (a lead that ran to its end twice) / redelivered_done (a message
                                   redelivered after its result was recorded: acknowledged, not run)
    <prefix>:run:{<run>}:inflight  hash: lead id -> worker id running it
    <prefix>:run:{<run>}:dead      hash: lead id -> JSON (reason, deliveries, message id)
    <prefix>:run:{<run>}:held      hash: lead id -> JSON of a *parked* held lead (status held, reason,
                                   cause, tries, input): a gate could not run or the budget ran out,
                                   its retries are used up; ``queue retry-held`` queues it again
    <prefix>:run:{<run>}:heldtries hash: lead id -> how many times the lead came back held
    <prefix>:run:{<run>}:refused   hash: worker id -> JSON (problems, host, at): that worker's
                                   preflight of the run's route failed, it takes none of its leads
    <prefix>:runs                  sorted set of run ids by creation time

A result is recorded with ``HSETNX`` in one Lua script: a lead that finishes twice (after a
redelivery) keeps its first result, and the second only increments ``duplicates``. A held lead
is never a result (see :mod:`waystation.worker.held`): it is retried, then parked in ``:held``;
a run with parked held leads is finished but did not do everything it was asked. Every key
of a run expires ``ttl`` seconds (default 7 days) after the run's last write; checkpoints expire
with the same TTL.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from waystation.budget import to_micros

DEFAULT_TTL = 7 * 24 * 3600
STATUS_KEYS = ("succeeded", "stopped", "failed")

_RECORD_LUA = """
local results, counts, inflight, dead, held = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local lead, body, status, cost, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local fresh = redis.call('HSETNX', results, lead, body)
if fresh == 1 then
  redis.call('HINCRBY', counts, status, 1)
  redis.call('HINCRBY', counts, 'cost', cost)
else
  redis.call('HINCRBY', counts, 'duplicates', 1)
end
redis.call('HDEL', inflight, lead)
redis.call('HDEL', dead, lead)
redis.call('HDEL', held, lead)
if ttl > 0 then
  for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ttl) end
end
return fresh
"""


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class RunKeys:
    """Key names of one run (see the module docstring)."""

    def __init__(self, prefix: str, run_id: str) -> None:
        self.prefix = prefix
        self.run_id = run_id
        base = f"{prefix}:run:{{{run_id}}}"
        self.meta = f"{base}:meta"
        self.order = f"{base}:order"
        self.rejects = f"{base}:rejects"
        self.results = f"{base}:results"
        self.counts = f"{base}:counts"
        self.inflight = f"{base}:inflight"
        self.dead = f"{base}:dead"
        self.held = f"{base}:held"
        self.heldtries = f"{base}:heldtries"
        self.refused = f"{base}:refused"
        self.runs = f"{prefix}:runs"

    def all(self) -> list[str]:
        """Every key of the run (for TTL and deletion)."""
        return [self.meta, self.order, self.rejects, self.results, self.counts, self.inflight, self.dead,
                self.held, self.heldtries, self.refused]


def new_run_id() -> str:
    """A fresh run id: UTC time plus random hex (sortable, unique per enqueue)."""
    import secrets

    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


async def create_run(client: Any, keys: RunKeys, meta: Mapping[str, Any], ttl: int = DEFAULT_TTL) -> bool:
    """Create the run's meta; ``False`` when a run with this id exists already."""
    created = await client.hsetnx(keys.meta, "created_at", repr(time.time()))
    if not created:
        return False
    pipe = client.pipeline(transaction=True)
    pipe.hset(keys.meta, mapping={k: _field(v) for k, v in meta.items()})
    pipe.hset(keys.meta, "ttl", str(ttl))
    pipe.zadd(keys.runs, {keys.run_id: time.time()})
    if ttl:
        pipe.expire(keys.meta, ttl)
        pipe.expire(keys.runs, ttl)
    await pipe.execute()
    return True


def _field(v: Any) -> str:
    if v is None:
        return ""
    return v if isinstance(v, str) else json.dumps(v)


async def load_meta(client: Any, keys: RunKeys) -> dict[str, str] | None:
    """The run's meta fields as text, or ``None`` when there is no such run."""
    raw = await client.hgetall(keys.meta)
    if not raw:
        return None
    return {_s(k): _s(v) for k, v in raw.items()}


async def record_result(client: Any, keys: RunKeys, lead_id: str, result: Mapping[str, Any], ttl: int) -> bool:
    """Record a lead's result once; ``False`` when it had one already (a duplicate finish)."""
    script = client.register_script(_RECORD_LUA)
    body = json.dumps(dict(result), default=str)
    status = str(result.get("status", "failed"))
    fresh = await script(keys=[keys.results, keys.counts, keys.inflight, keys.dead, keys.held],
                         args=[lead_id, body, status, str(to_micros(float(result.get("cost", 0.0)))), str(ttl)])
    return bool(fresh)


async def run_status(client: Any, keys: RunKeys, live_workers: set[str] | None = None) -> dict[str, Any]:
    """Counts of a run: queued, in progress, done (and by status), held (parked), dead-lettered,
    spend, duplicates, refusals and whether it is finished. ``live_workers``: ids of workers whose
    heartbeat is fresh (an in-progress entry of a dead worker counts as queued: it is redelivered).
    A lead waiting for its next held retry is queued (it is in the queue, delayed)."""
    meta = await load_meta(client, keys) or {}
    pipe = client.pipeline(transaction=False)
    pipe.hlen(keys.results)
    pipe.hgetall(keys.counts)
    pipe.hgetall(keys.inflight)
    pipe.hlen(keys.dead)
    pipe.hlen(keys.held)
    pipe.hgetall(keys.refused)
    done, counts_raw, inflight, dead, held, refused = await pipe.execute()
    counts = {_s(k): int(v) for k, v in counts_raw.items()}
    workers = {_s(v) for v in inflight.values()}
    running = len(inflight) if live_workers is None else sum(1 for v in inflight.values() if _s(v) in live_workers)
    total = int(meta.get("leads") or 0)
    queued = max(0, total - int(done) - int(dead) - int(held) - running)
    return {
        "run_id": keys.run_id, "route": meta.get("route_name"), "leads": total,
        "rows": int(meta.get("rows") or 0), "rejected": int(meta.get("rejected") or 0),
        "queued": queued, "in_progress": running, "done": int(done),
        **{k: counts.get(k, 0) for k in STATUS_KEYS},
        "held": int(held), "held_retries": counts.get("held_retries", 0),
        "dead_lettered": int(dead), "spent": counts.get("cost", 0) / 1e6,
        "duplicates": counts.get("duplicates", 0), "redelivered_done": counts.get("redelivered_done", 0),
        "workers": sorted(workers),
        "refused": {_s(k): json.loads(v) for k, v in refused.items()},
        "finished": meta.get("sealed") == "1" and int(done) + int(dead) + int(held) >= total,
    }


def lead_counts(status: Mapping[str, Any]) -> dict[str, int]:
    """A run status's leads by the report's statuses (for ``--fail-on``): dead-lettered, queued
    and in-progress leads are ``unfinished``, parked held leads ``held``."""
    out = {k: int(status.get(k, 0)) for k in (*STATUS_KEYS, "held", "rejected")}
    out["unfinished"] = int(status.get("dead_lettered", 0)) + int(status.get("queued", 0)) + \
        int(status.get("in_progress", 0))
    return out


async def iter_rows(client: Any, keys: RunKeys, page: int = 500) -> AsyncIterator[tuple[str, dict[str, Any] | None]]:
    """``(lead_id, result or None)`` for every input row in input order (``!rejected:<n>`` ids
    for malformed rows), fetched in pages."""
    start = 0
    while True:
        ids = [_s(x) for x in await client.lrange(keys.order, start, start + page - 1)]
        if not ids:
            return
        real = [i for i in ids if not i.startswith("!")]
        bodies = await client.hmget(keys.results, real) if real else []
        found = dict(zip(real, bodies, strict=True))
        for lid in ids:
            body = found.get(lid)
            yield lid, (json.loads(body) if body is not None else None)
        start += page


async def rejects(client: Any, keys: RunKeys) -> list[dict[str, Any]]:
    """Every malformed row recorded at enqueue."""
    return [json.loads(x) for x in await client.lrange(keys.rejects, 0, -1)]


async def dead_letters(client: Any, keys: RunKeys) -> dict[str, dict[str, Any]]:
    """lead id -> what is known about its dead letter (reason, deliveries, message id)."""
    raw = await client.hgetall(keys.dead)
    return {_s(k): json.loads(v) for k, v in raw.items()}


async def list_runs(client: Any, prefix: str) -> list[str]:
    """Run ids, oldest first (runs whose meta expired are dropped)."""
    ids = [_s(x) for x in await client.zrange(f"{prefix}:runs", 0, -1)]
    live = []
    for rid in ids:
        if await client.exists(RunKeys(prefix, rid).meta):
            live.append(rid)
        else:
            await client.zrem(f"{prefix}:runs", rid)
    return live
