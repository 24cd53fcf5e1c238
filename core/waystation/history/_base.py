"""What both history stores share: documents in rows, segments merged on read."""

from __future__ import annotations

import json
from typing import Any

from waystation.history.model import RunHistory, merge_runs


class DocumentHistory:
    """A history store over five storage primitives; subclasses implement them for one database.

    Rows: ``run_history(run_id, segment, route, started_at, doc)`` and
    ``run_estimates(route, input_key, created_at, doc)``; ``doc`` is JSON."""

    url: str

    async def _put(self, run_id: str, segment: str, route: str, started_at: float, doc: str) -> None:
        raise NotImplementedError

    async def _docs(self, route: str | None, run_id: str | None) -> list[str]:
        """Every segment's document (of ``route`` / of ``run_id``), newest run first."""
        raise NotImplementedError

    async def _drop(self, run_id: str) -> int:
        raise NotImplementedError

    async def _put_estimate(self, route: str, input_key: str, at: float, doc: str) -> None:
        raise NotImplementedError

    async def _estimate(self, route: str, input_key: str, before: float | None) -> str | None:
        raise NotImplementedError

    # -- the protocol -------------------------------------------------------------------------

    async def record(self, run: RunHistory) -> None:
        """Save (replace) one segment of a run."""
        await self._put(run.run_id, run.segment, run.route, run.started_at, run.model_dump_json())

    async def runs(self, *, route: str | None = None, limit: int | None = None) -> list[RunHistory]:
        """Runs (segments merged), newest first."""
        by_run: dict[str, list[RunHistory]] = {}
        for doc in await self._docs(route, None):
            seg = RunHistory.model_validate_json(doc)
            by_run.setdefault(seg.run_id, []).append(seg)
        merged = sorted((merge_runs(parts) for parts in by_run.values()), key=lambda r: r.started_at,
                        reverse=True)
        return merged[:limit] if limit is not None else merged

    async def run(self, run_id: str) -> RunHistory | None:
        """One run (segments merged), or ``None``."""
        docs = await self._docs(None, run_id)
        return merge_runs(RunHistory.model_validate_json(d) for d in docs) if docs else None

    async def delete(self, run_id: str) -> int:
        """Forget a run's history; returns the segments deleted."""
        return await self._drop(run_id)

    async def save_estimate(self, route: str, input_key: str, estimate: dict[str, Any], at: float) -> None:
        """Keep a forecast made for ``route`` on ``input_key``."""
        await self._put_estimate(route, input_key, at, json.dumps(estimate))

    async def estimate_for(self, route: str, input_key: str, before: float | None = None) -> dict[str, Any] | None:
        """The latest forecast for ``route`` on ``input_key`` (made before ``before``)."""
        doc = await self._estimate(route, input_key, before)
        return json.loads(doc) if doc is not None else None
