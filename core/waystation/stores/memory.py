"""An in-process checkpoint store for tests: dicts, with the same group-commit and JSON semantics
as the real stores (a saved state is a JSON snapshot, never a live reference)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from waystation.stores._group import GroupCommitter, GroupedSaves, LeadSave, encode_latest
from waystation.stores.base import DeferredErrors, StoreStats, _check_ids, dumps, load_state, loads


class MemoryStore(GroupedSaves):
    """Checkpoints in memory (``memory://``); lost with the process. For tests."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self.stats = StoreStats()
        self._deferred = DeferredErrors()
        self._leads: dict[str, dict[str, str]] = {}
        self._runs: dict[str, tuple[str, float, float]] = {}
        self._group: GroupCommitter[LeadSave, None] = GroupCommitter(self._flush)
        self._closed = False

    async def _flush(self, batch: list[LeadSave]) -> list[None]:
        merged = encode_latest(batch, self._deferred)
        await asyncio.sleep(0)  # a commit is never instantaneous: let later writers queue up
        for (run, lead), text in merged.items():
            self._leads.setdefault(run, {})[lead] = text
        self.stats.transactions += 1
        self.stats.rows += len(merged)
        return [None] * len(batch)

    async def load(self, run_id: str, lead_id: str) -> dict[str, Any] | None:
        """The saved state of a lead, or ``None``."""
        _check_ids(run_id, lead_id)
        self._check_open()
        self.stats.loads += 1
        text = self._leads.get(run_id, {}).get(lead_id)
        return None if text is None else load_state(text, lead_id)

    async def iter_states(self, run_id: str) -> AsyncIterator[dict[str, Any]]:
        """Every lead state of ``run_id``, by lead id."""
        _check_ids(run_id)
        leads = self._leads.get(run_id, {})
        for lead_id in sorted(leads):
            text = leads.get(lead_id)
            if text is not None:
                yield load_state(text, lead_id)

    async def save_run(self, run_id: str, meta: dict[str, Any]) -> None:
        """Save a run's metadata."""
        _check_ids(run_id)
        self._check_open()
        now = time.time()
        old = self._runs.get(run_id)
        self._runs[run_id] = (dumps(meta), old[1] if old else now, now)

    async def load_run(self, run_id: str) -> dict[str, Any] | None:
        """A run's metadata, or ``None``."""
        _check_ids(run_id)
        row = self._runs.get(run_id)
        return None if row is None else loads(row[0])

    async def list_runs(self) -> list[dict[str, Any]]:
        """Every run, oldest first, with ``run_id``, ``created_at`` and ``updated_at`` added."""
        rows = sorted(self._runs.items(), key=lambda kv: (kv[1][1], kv[0]))
        return [{**loads(meta), "run_id": rid, "created_at": c, "updated_at": u} for rid, (meta, c, u) in rows]

    async def delete_run(self, run_id: str) -> None:
        """Forget a run."""
        self._leads.pop(run_id, None)
        self._runs.pop(run_id, None)

    async def forget(self, match: Callable[[dict[str, Any]], bool], *, dry_run: bool = False) -> tuple[int, int]:
        """Delete every lead state for which ``match(state)`` is true; returns (removed, runs)."""
        await self._group.drain()
        removed, runs = 0, set()
        for run, leads in self._leads.items():
            for lead in [k for k, text in leads.items() if match(load_state(text, k))]:
                removed += 1
                runs.add(run)
                if not dry_run:
                    del leads[lead]
        return removed, len(runs)

    async def close(self) -> None:
        """Apply what is queued; further use raises."""
        await self._group.drain()
        self._closed = True
        self._check_lost()
        self._deferred.check()
