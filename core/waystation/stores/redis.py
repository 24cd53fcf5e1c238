"""The Redis checkpoint store (redis-py asyncio): group commit in ``MULTI``/``EXEC`` pipelines,
TTL set in the same transaction as every write.

Keys (``{run}`` in braces so that one run's keys share a cluster hash slot):

- ``<prefix>:{<run_id>}:leads`` — hash: lead id → state JSON. Expires ``ttl`` seconds after the
  run's last write, as a unit.
- ``<prefix>:{<run_id>}:meta`` — hash: ``meta`` (JSON), ``created_at``, ``updated_at``.
- ``<prefix>:runs`` — sorted set of run ids by creation time (entries whose meta expired are
  dropped when listed).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from waystation.redact import redact_url
from waystation.stores._group import GroupCommitter, GroupedSaves, LeadSave, encode_latest
from waystation.stores.base import DeferredErrors, StoreStats, _check_ids, dumps, load_state, loads

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: Default TTL of a run's keys: a week, so a batch interrupted on Friday resumes on Monday.
DEFAULT_TTL = 7 * 24 * 3600
_OWN_OPTIONS = ("ttl", "prefix")


class RedisStore(GroupedSaves):
    """Checkpoints in Redis (``redis://host:port/db?ttl=SECONDS&prefix=NAME``)."""

    def __init__(self, url: str, *, client: Redis | None = None) -> None:
        from redis.asyncio import Redis

        self.url = redact_url(url)
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        own = {k: v for k, v in query if k in _OWN_OPTIONS}
        rest = [(k, v) for k, v in query if k not in _OWN_OPTIONS]
        self.ttl = int(own.get("ttl", DEFAULT_TTL))
        if self.ttl < 0:
            raise ValueError("ttl must be >= 0 (0: keys never expire)")
        self.prefix = own.get("prefix") or "waystation"
        self.client: Redis = client or Redis.from_url(parts._replace(query=urlencode(rest)).geturl())
        self.stats = StoreStats()
        self._deferred = DeferredErrors()
        self._group: GroupCommitter[LeadSave, None] = GroupCommitter(self._flush)
        self._reads: GroupCommitter[tuple[str, str], bytes | None] = GroupCommitter(self._fetch)
        self._closed = False

    # -- keys -----------------------------------------------------------------------------------

    def _leads_key(self, run_id: str) -> str:
        return f"{self.prefix}:{{{run_id}}}:leads"

    def _meta_key(self, run_id: str) -> str:
        return f"{self.prefix}:{{{run_id}}}:meta"

    @property
    def _runs_key(self) -> str:
        return f"{self.prefix}:runs"

    # -- writes ---------------------------------------------------------------------------------

    async def _flush(self, batch: list[LeadSave]) -> list[None]:
        by_run: dict[str, dict[str, str]] = {}
        for (run, lead), text in encode_latest(batch, self._deferred).items():
            by_run.setdefault(run, {})[lead] = text
        pipe = self.client.pipeline(transaction=True)
        for run, mapping in by_run.items():
            key = self._leads_key(run)
            pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
            if self.ttl:
                pipe.expire(key, self.ttl)
                pipe.expire(self._meta_key(run), self.ttl)
        await pipe.execute()
        self.stats.transactions += 1
        self.stats.rows += sum(len(m) for m in by_run.values())
        return [None] * len(batch)

    async def _fetch(self, batch: list[tuple[str, str]]) -> list[bytes | None]:
        """Concurrent loads share one pipeline (one round trip, one pooled connection)."""
        if len(batch) == 1:
            run, lead = batch[0]
            return [await self.client.hget(self._leads_key(run), lead)]  # type: ignore[list-item]
        pipe = self.client.pipeline(transaction=False)
        for run, lead in batch:
            pipe.hget(self._leads_key(run), lead)
        return list(await pipe.execute())

    async def save_run(self, run_id: str, meta: dict[str, Any]) -> None:
        """Save a run's metadata (and register the run), TTL in the same transaction."""
        _check_ids(run_id)
        self._check_open()
        now = time.time()
        key = self._meta_key(run_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, mapping={"meta": dumps(meta), "updated_at": repr(now)})
        pipe.hsetnx(key, "created_at", repr(now))
        pipe.zadd(self._runs_key, {run_id: now}, nx=True)
        if self.ttl:
            pipe.expire(key, self.ttl)
            pipe.expire(self._leads_key(run_id), self.ttl)
            pipe.expire(self._runs_key, self.ttl)
        await pipe.execute()

    async def delete_run(self, run_id: str) -> None:
        """Forget a run: its metadata and every lead state."""
        _check_ids(run_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self._leads_key(run_id), self._meta_key(run_id))
        pipe.zrem(self._runs_key, run_id)
        await pipe.execute()

    async def forget(self, match: Callable[[dict[str, Any]], bool], *, dry_run: bool = False) -> tuple[int, int]:
        """Delete every lead state (of any run under this prefix) for which ``match(state)`` is
        true; returns (states removed, runs they were in). See :mod:`waystation.forget`."""
        self._check_open()
        await self._group.drain()  # queued saves first: an erased lead must not come back after
        removed = runs = 0
        async for key in self.client.scan_iter(match=f"{self.prefix}:{{*}}:leads", count=500):
            hits: list[bytes] = []
            async for lead_id, raw in self.client.hscan_iter(key, count=500):
                if match(load_state(raw, lead_id)):
                    hits.append(lead_id)
            if hits:
                runs += 1
                removed += len(set(hits))
                if not dry_run:
                    await self.client.hdel(key, *set(hits))
        return removed, runs

    # -- reads ----------------------------------------------------------------------------------

    async def load(self, run_id: str, lead_id: str) -> dict[str, Any] | None:
        """The saved state of a lead, or ``None``."""
        _check_ids(run_id, lead_id)
        self._check_open()
        self.stats.loads += 1
        raw = await self._reads.submit((run_id, lead_id))
        return None if raw is None else load_state(raw, lead_id)

    async def iter_states(self, run_id: str) -> AsyncIterator[dict[str, Any]]:
        """Every lead state of ``run_id`` (``HSCAN`` in pages; duplicates HSCAN may return during
        a rehash are dropped)."""
        _check_ids(run_id)
        seen: set[bytes] = set()
        async for lead_id, raw in self.client.hscan_iter(self._leads_key(run_id), count=500):
            if lead_id in seen:
                continue
            seen.add(lead_id)
            yield load_state(raw, lead_id)

    async def load_run(self, run_id: str) -> dict[str, Any] | None:
        """A run's metadata, or ``None``."""
        _check_ids(run_id)
        raw = await self.client.hget(self._meta_key(run_id), "meta")
        return None if raw is None else loads(raw)

    async def list_runs(self) -> list[dict[str, Any]]:
        """Every run, oldest first, with ``run_id``, ``created_at`` and ``updated_at`` added."""
        raw_ids: list[Any] = await self.client.zrange(self._runs_key, 0, -1)
        ids = [r.decode() if isinstance(r, bytes) else str(r) for r in raw_ids]
        if not ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for rid in ids:
            pipe.hmget(self._meta_key(rid), ["meta", "created_at", "updated_at"])
        rows = await pipe.execute()
        out: list[dict[str, Any]] = []
        gone: list[str] = []
        for rid, (meta, created, updated) in zip(ids, rows, strict=True):
            if meta is None:
                gone.append(rid)
                continue
            out.append({**loads(meta), "run_id": rid, "created_at": float(created or 0.0),
                        "updated_at": float(updated or 0.0)})
        if gone:
            await self.client.zrem(self._runs_key, *gone)
        out.sort(key=lambda r: (r["created_at"], r["run_id"]))
        return out

    async def ttl_of(self, run_id: str) -> int:
        """Seconds until the run's lead states expire (Redis ``TTL``: -1 none, -2 no key)."""
        return int(await self.client.ttl(self._leads_key(run_id)))

    async def close(self) -> None:
        """Flush what is queued and close the connection pool."""
        if self._closed:
            return
        await self._group.drain()
        await self._reads.drain()
        self._closed = True
        await self.client.aclose()
        self._check_lost()
        self._deferred.check()

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, prefix={self.prefix!r}, ttl={self.ttl})"
