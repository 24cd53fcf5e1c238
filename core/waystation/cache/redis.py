"""The Redis lookup cache, for workers on several machines (redis-py asyncio).

Keys (``prefix`` from the URL's ``?prefix=``, default ``waystation``):

- ``<prefix>:cache:e:<station>:<key>`` — the entry (JSON), expiring at its TTL;
- ``<prefix>:cache:t:<token>`` — the set of entries holding one subject token (for ``forget``),
  expiring with the longest-lived of them;
- ``<prefix>:cache:c:<station>`` — hit / miss / write counters (a hash);
- ``<prefix>:cache:stations`` — the stations that ever wrote an entry.

An entry and its subject sets are written in one ``MULTI``/``EXEC``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from waystation.cache.entry import CacheEntry, CacheStats, Clock
from waystation.stores import redact_url

if TYPE_CHECKING:
    from redis.asyncio import Redis


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class RedisCache:
    """:class:`~waystation.cache.LookupCache` in Redis (see the module docstring)."""

    def __init__(self, url: str, *, clock: Clock = time.time, client: Redis | None = None) -> None:
        from redis.asyncio import Redis

        self.url = redact_url(url)
        self.clock = clock
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        own = {k: v for k, v in query if k in ("prefix", "ttl")}
        rest = [(k, v) for k, v in query if k not in ("prefix", "ttl")]
        self.prefix = own.get("prefix") or "waystation"
        self.client: Redis = client or Redis.from_url(parts._replace(query=urlencode(rest)).geturl())

    def _entry(self, station: str, key: str) -> str:
        return f"{self.prefix}:cache:e:{station}:{key}"

    def _token(self, token: str) -> str:
        return f"{self.prefix}:cache:t:{token}"

    def _counters(self, station: str) -> str:
        return f"{self.prefix}:cache:c:{station}"

    @property
    def _stations_key(self) -> str:
        return f"{self.prefix}:cache:stations"

    async def get(self, station: str, key: str) -> CacheEntry | None:
        raw = await self.client.get(self._entry(station, key))
        entry = CacheEntry.from_json(station, json.loads(raw)) if raw is not None else None
        if entry is not None and entry.expires_at <= self.clock():
            entry = None
        await self.client.hincrby(self._counters(station), "hits" if entry is not None else "misses", 1)
        return entry

    async def put(self, key: str, entry: CacheEntry) -> None:
        # Redis expires the entry after its TTL measured from now (the logical expiry, checked
        # on every get, follows the cache's clock)
        ms = max(1, math.ceil((entry.expires_at - entry.stored_at) * 1000))
        name = self._entry(entry.station, key)
        pipe = self.client.pipeline(transaction=True)
        pipe.set(name, json.dumps(entry.to_json(), default=str), px=ms)
        for token in entry.subjects:
            tk = self._token(token)
            pipe.sadd(tk, name)
            pipe.pexpire(tk, ms, gt=True)
            pipe.pexpire(tk, ms, nx=True)
        pipe.hincrby(self._counters(entry.station), "writes", 1)
        pipe.sadd(self._stations_key, entry.station)
        await pipe.execute()

    async def _stations(self, station: str | None) -> list[str]:
        if station is not None:
            return [station]
        return sorted(_text(s) for s in await self.client.smembers(self._stations_key))

    async def _keys(self, station: str) -> list[str]:
        pattern = f"{self._entry(station, '')}*"
        return [_text(k) async for k in self.client.scan_iter(match=pattern, count=1000)]

    async def stats(self, station: str | None = None) -> list[CacheStats]:
        now = self.clock()
        out: list[CacheStats] = []
        for name in await self._stations(station):
            st = CacheStats(station=name)
            counters = await self.client.hgetall(self._counters(name))
            values = {_text(k): int(v) for k, v in counters.items()}
            st.hits, st.misses, st.writes = values.get("hits", 0), values.get("misses", 0), values.get("writes", 0)
            keys = await self._keys(name)
            stored: list[float] = []
            for i in range(0, len(keys), 500):
                for raw in await self.client.mget(keys[i:i + 500]):
                    if raw is None:
                        continue
                    data = json.loads(raw)
                    if float(data["expires_at"]) > now:
                        stored.append(float(data["stored_at"]))
                    else:
                        st.expired += 1
            st.entries = len(stored)
            if stored:
                st.oldest_age, st.newest_age = max(0.0, now - min(stored)), max(0.0, now - max(stored))
            if keys or values:
                out.append(st)
        return out

    async def _remove(self, names: list[str]) -> int:
        n = 0
        for i in range(0, len(names), 500):
            n += int(await self.client.delete(*names[i:i + 500]))
        return n

    async def prune(self, station: str | None = None) -> int:
        now = self.clock()
        doomed: list[str] = []
        for name in await self._stations(station):
            keys = await self._keys(name)
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                for k, raw in zip(chunk, await self.client.mget(chunk), strict=True):
                    if raw is not None and float(json.loads(raw)["expires_at"]) <= now:
                        doomed.append(k)
        return await self._remove(doomed)

    async def clear(self, station: str | None = None) -> int:
        n = 0
        for name in await self._stations(station):
            n += await self._remove(await self._keys(name))
            await self.client.delete(self._counters(name))
            await self.client.srem(self._stations_key, name)
        return n

    async def forget(self, subjects: Iterable[str], *, dry_run: bool = False) -> int:
        names: set[str] = set()
        token_keys = [self._token(t) for t in set(subjects)]
        for tk in token_keys:
            names.update(_text(m) for m in await self.client.smembers(tk))
        if dry_run:
            return int(sum([await self.client.exists(n) for n in sorted(names)]))
        n = await self._remove(sorted(names))
        await self._remove(token_keys)
        return n

    async def used(self) -> bool:
        return bool(await self.client.exists(self._stations_key))

    async def close(self) -> None:
        await self.client.aclose()
