"""Enqueue a lead file as a worker run; a run's status; export its results like ``waystation run``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waystation.batch import (
    BatchConfig,
    OutputWriter,
    RejectsWriter,
    compile_for_input,
    detect_format,
    open_reader,
    output_columns,
)
from waystation.engine import lead_id_of
from waystation.plugins import PluginHost
from waystation.worker.config import WorkerConfig
from waystation.worker.state import RunKeys, create_run, iter_rows, load_meta, new_run_id, rejects, run_status


@dataclass
class Enqueued:
    """What ``enqueue`` did."""

    run_id: str
    leads: int = 0
    rows: int = 0
    rejected: list[str] = field(default_factory=list)
    duplicates: int = 0


def enqueue_file(cfg: WorkerConfig, route_path: Path, input_path: Path, *, host: PluginHost,
                 input_format: str | None = None, budget_total: float | None = None,
                 run_id: str | None = None) -> Enqueued:
    """Make a new run of ``route_path`` over ``input_path`` and queue each distinct lead once.

    The route is compiled against the input's columns first (a route that cannot run refuses
    here). Every input row is recorded in order (``export`` writes one row per input row); a lead
    id seen twice is queued once. Malformed rows are recorded as rejected, not queued."""
    from waystation.worker.app import enqueue_messages, state_client
    from waystation.worker.fleet import FleetBudget

    bcfg = BatchConfig(route=route_path, input=input_path, input_format=input_format)
    _route, plan, fmt, header = compile_for_input(bcfg, host)
    run_id = run_id or new_run_id()
    keys = RunKeys(cfg.prefix, run_id)
    client = state_client(cfg)
    base = header if header is not None else []
    meta = {"route_name": plan.name, "route": route_path.read_text(encoding="utf-8"),
            "route_dir": str(route_path.resolve().parent),  # its relative data paths are read from there
            "input": str(input_path), "format": fmt, "queue": cfg.queue,
            "budget_total": "" if budget_total is None else repr(budget_total),
            "steps": [[s.id, s.spec.station] for s in plan.steps],
            "out_columns": output_columns(plan, base) if header is not None else None}
    from waystation.worker.state import create_run as _create

    async def create() -> bool:
        import redis.asyncio as aioredis

        aclient = aioredis.Redis.from_url(cfg.redis_url)
        try:
            made = await _create(aclient, keys, meta, cfg.ttl)
            if made and budget_total is not None:
                await FleetBudget(aclient, cfg.prefix, run_id, ttl=cfg.ttl).set_limit(budget_total)
            return made
        finally:
            await aclient.aclose()

    if not asyncio.run(create()):
        raise ValueError(f"a run {run_id!r} exists already: every enqueue makes a new run")
    out = Enqueued(run_id)
    reader = open_reader(input_path, fmt)
    reader.required = frozenset(plan.requirements())
    seen: set[str] = set()

    def leads() -> Iterator[tuple[str, dict[str, Any]]]:
        pipe = client.pipeline(transaction=False)
        for rec in reader:
            out.rows += 1
            if rec.lead is None or rec.error:
                out.rejected.append(f"{input_path}:{rec.line}: not queued: {rec.error}")
                pipe.rpush(keys.order, f"!rejected:{len(out.rejected)}")
                pipe.rpush(keys.rejects, json.dumps({"line": rec.line, "reason": rec.error, "input": rec.lead,
                                                     "raw": rec.raw}, default=str))
                continue
            lid = lead_id_of(rec.lead)
            pipe.rpush(keys.order, lid)
            if len(pipe) >= 1000:
                pipe.execute()
            if lid in seen:
                out.duplicates += 1
                continue
            seen.add(lid)
            out.leads += 1
            yield lid, rec.lead
        pipe.execute()

    try:
        # the order list is written before each lead is sent (pipelined), so export always finds it
        enqueue_messages(cfg, run_id, leads(), client=client)
    finally:
        reader.close()
    pipe = client.pipeline(transaction=True)
    pipe.hset(keys.meta, mapping={"leads": str(out.leads), "rows": str(out.rows),
                                  "rejected": str(len(out.rejected)), "sealed": "1"})
    if cfg.ttl:
        for k in (keys.meta, keys.order, keys.rejects):
            pipe.expire(k, cfg.ttl)
    pipe.execute()
    asyncio.run(_save_report_meta(cfg, keys))
    return out


async def _save_report_meta(cfg: WorkerConfig, keys: RunKeys) -> None:
    """Put the run in the checkpoint store's run list (``waystation report`` lists it)."""
    import redis.asyncio as aioredis

    from waystation.stores import open_store
    from waystation.worker.reporting import run_meta

    client = aioredis.Redis.from_url(cfg.redis_url)
    store = open_store(cfg.checkpoint_url)
    try:
        fields = await load_meta(client, keys)
        if fields is not None:
            await store.save_run(keys.run_id, run_meta(fields, "queued"))
    finally:
        await store.close()
        await client.aclose()


async def status(cfg: WorkerConfig, run_id: str) -> dict[str, Any] | None:
    """The run's counts (see :func:`waystation.worker.state.run_status`) plus the fleet budget and
    the workers alive; ``None`` when there is no such run."""
    import redis.asyncio as aioredis

    from waystation.worker.fleet import FleetBudget

    client = aioredis.Redis.from_url(cfg.redis_url)
    try:
        keys = RunKeys(cfg.prefix, run_id)
        if await load_meta(client, keys) is None:
            return None
        live = set()
        async for key in client.scan_iter(f"{cfg.prefix}:worker:*", count=500):
            raw = await client.get(key)
            if raw:
                live.add(str(json.loads(raw).get("worker_id")))
        out = await run_status(client, keys, live)
        out["budget"] = await FleetBudget(client, cfg.prefix, run_id, ttl=cfg.ttl).status()
        out["workers_alive"] = len(live)
        if out["finished"]:
            from waystation.stores import open_store
            from waystation.worker.reporting import mark_complete

            store = open_store(cfg.checkpoint_url)
            try:
                await mark_complete(store, client, keys, out)
            finally:
                await store.close()
        return out
    finally:
        await client.aclose()


async def export(cfg: WorkerConfig, run_id: str, output: Path, *, output_format: str | None = None,
                 rejects_path: Path | None = None) -> dict[str, Any]:
    """Write a worker run's results, one row per input row in input order, like ``waystation
    run`` (input columns, the fields the route adds, ``_lead_id``, ``_status``, ``_reason``,
    ``_cost``); failed, held, rejected and unfinished leads also go to the rejects file. Returns counts
    (and ``dial``: the verdicts as exported, when rows have one). A dial verdict is re-checked as it
    is written, like ``waystation run`` does: one whose evidence has expired since is not written
    as ``yes`` (docs/compliance.md)."""
    import redis.asyncio as aioredis

    from waystation.dial.export import ExportTally
    from waystation.worker.held import parked

    client = aioredis.Redis.from_url(cfg.redis_url)
    try:
        keys = RunKeys(cfg.prefix, run_id)
        meta = await load_meta(client, keys)
        if meta is None:
            raise ValueError(f"no worker run {run_id!r} (expired after its TTL, or another --prefix)")
        fmt = detect_format(output, output_format)
        columns = json.loads(meta.get("out_columns") or "null")
        if fmt == "csv" and not columns:
            columns = await _columns_from_results(client, keys, meta)
        rej_path = rejects_path or output.with_name(f"{output.stem}.rejects.jsonl")
        writer = OutputWriter(output, fmt, columns, 0)
        rej = RejectsWriter(rej_path, 0)
        bad = await rejects(client, keys)
        counts: dict[str, int] = {}
        dead = {k: v for k, v in (await client.hgetall(keys.dead)).items()}
        dead_ids = {(k.decode() if isinstance(k, bytes) else k) for k in dead}
        held = await parked(client, keys)
        tally = ExportTally()
        try:
            async for lid, result in iter_rows(client, keys):
                if lid.startswith("!rejected:"):
                    entry = bad[int(lid.split(":")[1]) - 1]
                    row = {**(entry.get("input") or {}), "_status": "rejected", "_reason": entry.get("reason"),
                           "_cost": 0.0}
                    rej.write({**entry, "status": "rejected"})
                    status_ = "rejected"
                elif result is None and lid in held:  # a gate could not run, or the budget ran out
                    h = held[lid]
                    status_ = "held"
                    row = {**tally.check(h.get("data") or h.get("input") or {}), "_lead_id": lid, "_status": "held",
                           "_reason": h.get("reason"), "_cost": round(float(h.get("cost", 0.0)), 6)}
                    rej.write({"lead_id": lid, "status": "held", "reason": h.get("reason"), "cause": h.get("cause"),
                               "tries": h.get("tries"), "errors": h.get("errors")})
                elif result is None:
                    status_ = "dead_lettered" if lid in dead_ids else "unfinished"
                    row = {"_lead_id": lid, "_status": status_, "_reason": "not finished yet" if status_ ==
                           "unfinished" else "dead-lettered (waystation queue replay-dead RUN)", "_cost": 0.0}
                    rej.write({"lead_id": lid, "status": status_, "reason": row["_reason"]})
                else:
                    status_ = str(result.get("status"))
                    row = {**tally.check(result.get("data") or {}), "_lead_id": lid, "_status": status_,
                           "_reason": result.get("reason"), "_cost": round(float(result.get("cost", 0.0)), 6)}
                    if status_ == "failed":
                        rej.write({"lead_id": lid, "status": status_, "reason": result.get("reason"),
                                   "errors": result.get("errors"), "failed_steps": result.get("failed_steps")})
                writer.write(row)
                counts[status_] = counts.get(status_, 0) + 1
        finally:
            writer.close()
            rej.close()
        out: dict[str, Any] = {"output": str(output), "rejects": str(rej_path), "rows": sum(counts.values()),
                               **counts}
        if not tally.empty:
            out["dial"] = tally.as_dict()
        return out
    finally:
        await client.aclose()


async def _columns_from_results(client: Any, keys: RunKeys, meta: dict[str, str]) -> list[str]:
    """CSV columns of a JSONL-input run: the keys of its first result, then the status columns."""
    from waystation.batch import STATUS_COLUMNS

    cols: list[str] = []
    async for _lid, result in iter_rows(client, keys):
        if result is not None:
            cols = [k for k in (result.get("data") or {}) if k not in STATUS_COLUMNS]
            break
    return cols + list(STATUS_COLUMNS)


__all__ = ["Enqueued", "create_run", "enqueue_file", "export", "status"]
