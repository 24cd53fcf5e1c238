"""Worker runs in the checkpoint store's run list, so ``waystation report`` (and the run history)
shows them like batch runs: the run's metadata is saved at enqueue (status ``queued``) and again
when its last lead is done (status ``complete``, with the lead counts)."""

from __future__ import annotations

import time
from typing import Any

from waystation.stores import CheckpointStore
from waystation.worker.state import RunKeys, load_meta


def run_meta(fields: dict[str, str], status: str, counts: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metadata ``waystation report`` reads, from the run's meta fields."""
    import json

    leads = {k: int((counts or {}).get(k, 0)) for k in ("succeeded", "stopped", "held", "failed")}
    if counts is not None:
        leads["rejected"] = int(counts.get("rejected", 0))
        leads["dead_lettered"] = int(counts.get("dead_lettered", 0))
    budget = fields.get("budget_total") or ""
    return {
        "kind": "worker", "route_name": fields.get("route_name"), "input": fields.get("input"),
        "steps": json.loads(fields.get("steps") or "[]"), "status": status,
        "options": {"budget_total": float(budget) if budget else None, "queue": fields.get("queue")},
        "leads": leads, "written": int(fields.get("rows") or 0) if status == "complete" else 0,
        "started_at": float(fields.get("created_at") or time.time()), "updated_at": time.time(),
    }


async def mark_complete(store: CheckpointStore, client: Any, keys: RunKeys, status: dict[str, Any]) -> None:
    """Record a finished worker run in the store's run list (idempotent)."""
    fields = await load_meta(client, keys)
    if fields is None or fields.get("completed") == "1":
        return
    if not await client.hsetnx(keys.meta, "completed", "1"):
        return
    await store.save_run(keys.run_id, run_meta(fields, "complete", status))
