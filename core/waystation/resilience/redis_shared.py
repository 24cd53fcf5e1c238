"""Breaker state and rate limits shared through Redis, for workers on several machines.

Selected per station with ``breaker: {shared: redis}`` / ``rate_limit: {shared: redis}`` (in the
route step or on the station class). The engine finds Redis at ``Engine(..., redis_url=...)``, else
at the environment variable ``WAYSTATION_REDIS_URL``; keys start with ``redis_prefix`` (else
``WAYSTATION_REDIS_PREFIX``, else ``waystation``)::

    waystation:breaker:<station>   a hash: state, failures, opened_at, cause, probes, until
    waystation:rate:<station>      the earliest time (µs, Redis clock) the next call may go out
    waystation:slots:<station>     a sorted set of leased concurrency slots (score: lease end, ms)

Every change of breaker state is one Lua script, so it is atomic across processes: in half-open,
exactly ``half_open_max_calls`` probes go out in the whole fleet. The script applies the same
rules as :func:`waystation.resilience.breaker.transition_acquire` / ``transition_record``, with
the caller's clock (keep workers' clocks NTP-synced; a skew only shifts ``reset_after``).

The rate limit is a GCRA-style pacer: a call may go out when the Redis clock has reached the
stored time, which then moves one interval (``1/per_second``) past now; a caller that must wait
is told how long and sleeps exactly that (the waiting loop is ours: one poller per process, so
waiting leads do not stampede Redis). The concurrency cap (``concurrent``) is a semaphore of
leased slots (:class:`RedisConcurrency`), checked after the per-process one.

Needs ``redis`` (``pip install 'waystation[redis]'``); it is imported only when shared state is
used. The Redis URL may hold a password: it is never logged or put in an error message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from waystation.errors import WaystationError
from waystation.resilience.breaker import BreakerSnapshot, BreakerState
from waystation.resilience.policies import BreakerPolicy

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

#: Environment variable naming the Redis server for shared breakers and rate limits.
REDIS_URL_ENV = "WAYSTATION_REDIS_URL"
#: Environment variable naming the key prefix (default ``waystation``).
REDIS_PREFIX_ENV = "WAYSTATION_REDIS_PREFIX"
DEFAULT_PREFIX = "waystation"

log = logging.getLogger("waystation.resilience.redis")


class SharedStateError(WaystationError):
    """Shared (Redis) breaker or rate-limit state was asked for but cannot be used."""


def redis_url_from_env() -> str | None:
    """The Redis URL for shared state from ``WAYSTATION_REDIS_URL`` (``None`` when unset)."""
    return os.environ.get(REDIS_URL_ENV) or None


def redis_prefix_from_env() -> str:
    """The key prefix from ``WAYSTATION_REDIS_PREFIX`` (default ``waystation``)."""
    return os.environ.get(REDIS_PREFIX_ENV) or DEFAULT_PREFIX


class SharedRedis:
    """One lazily opened redis-py asyncio client per event loop, and the key naming.

    ``await shared.aclose()`` when done (the engine does it in ``close()``).
    """

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX, max_connections: int = 32) -> None:
        self._url = url
        self.prefix = prefix
        self.max_connections = max_connections
        self._client: Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: dict[str, AsyncScript] = {}

    def __repr__(self) -> str:
        return f"<SharedRedis prefix={self.prefix!r}>"  # never the URL: it may hold a password

    def key(self, kind: str, name: str) -> str:
        """The key of ``kind`` (``breaker``/``rate``) for station ``name``."""
        return f"{self.prefix}:{kind}:{name}"

    def client(self) -> Redis:
        """The client of the running event loop (made on first use)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            try:
                import redis.asyncio as aioredis
            except ImportError as exc:  # pragma: no cover - redis is a test dependency
                raise SharedStateError("shared breaker/rate-limit state needs redis: "
                                       "pip install 'waystation[redis]'") from exc
            # a blocking pool: with hundreds of leads in flight a caller waits for a connection
            # instead of failing with "Too many connections"
            pool = aioredis.BlockingConnectionPool.from_url(
                self._url, max_connections=self.max_connections, timeout=30, decode_responses=True)
            self._client = aioredis.Redis.from_pool(pool)
            self._loop = loop
            self._scripts = {}
        return self._client

    def script(self, name: str, source: str) -> AsyncScript:
        """A registered Lua script (EVALSHA, reloaded by redis-py on NOSCRIPT)."""
        client = self.client()
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = client.register_script(source)
        return script

    async def aclose(self) -> None:
        """Close the client of this loop, if one was opened."""
        client, self._client = self._client, None
        loop, self._loop = self._loop, None
        self._scripts = {}
        if client is not None and loop is asyncio.get_running_loop():
            await client.aclose()


# ---------------------------------------------------------------------------------- breaker

_BREAKER_LUA = """
local key = KEYS[1]
local op = ARGV[1]
local now = tonumber(ARGV[2])
local threshold = tonumber(ARGV[3])
local reset_after = tonumber(ARGV[4])
local max_probes = tonumber(ARGV[5])
local reset_exhausted = tonumber(ARGV[6])
local ok = ARGV[7]
local cause = ARGV[8]
local ttl = tonumber(ARGV[9])

local h = redis.call('HMGET', key, 'state', 'failures', 'opened_at', 'cause', 'probes')
local s = {state = h[1] or 'closed', failures = tonumber(h[2] or '0'), opened_at = tonumber(h[3] or '0'),
           cause = h[4] or '', probes = tonumber(h[5] or '0')}
local b = {state = s.state, failures = s.failures, opened_at = s.opened_at, cause = s.cause,
           probes = s.probes}
local allowed = 1

if op == 'acquire' then
  if s.state == 'open' then
    local wait = reset_after
    if s.cause == 'exhausted' then wait = reset_exhausted end
    if now - s.opened_at < wait then
      allowed = 0
    else
      s.state = 'half_open'; s.probes = 0; s.opened_at = now
    end
  end
  if allowed == 1 and s.state == 'half_open' then
    if s.probes >= max_probes then
      if now - s.opened_at < reset_after then
        allowed = 0
      else
        s.probes = 0; s.opened_at = now
      end
    end
    if allowed == 1 then s.probes = s.probes + 1 end
  end
elseif op == 'record' then
  if ok == '' then
    if s.state == 'half_open' and s.probes > 0 then s.probes = s.probes - 1 end
  elseif s.state == 'open' then
    if ok == '0' and cause == 'exhausted' and s.cause ~= 'exhausted' then
      s.cause = 'exhausted'; s.opened_at = now
    end
  elseif ok == '1' then
    if s.state == 'half_open' or s.failures > 0 then
      s.state = 'closed'; s.failures = 0; s.cause = ''; s.probes = 0
    end
  else
    s.failures = s.failures + 1
    local at_once = cause == 'exhausted' or cause == 'auth' or cause == 'blocked'
    if at_once or s.state == 'half_open' or s.failures >= threshold then
      s.state = 'open'; s.opened_at = now; s.probes = 0
      if at_once then s.cause = cause else s.cause = 'failures' end
    end
  end
end

if s.state ~= b.state or s.failures ~= b.failures or s.opened_at ~= b.opened_at or s.cause ~= b.cause
   or s.probes ~= b.probes then
  if s.state == 'closed' and s.failures == 0 then
    redis.call('DEL', key)
  else
    local untl = ''
    if s.state == 'open' then
      if s.cause == 'exhausted' then untl = s.opened_at + reset_exhausted else untl = s.opened_at + reset_after end
      untl = string.format('%.6f', untl)
    end
    redis.call('HSET', key, 'state', s.state, 'failures', s.failures,
               'opened_at', string.format('%.6f', s.opened_at), 'cause', s.cause, 'probes', s.probes,
               'until', untl)
    redis.call('PEXPIRE', key, ttl)
  end
end
return cjson.encode({allowed, b.state, b.failures, string.format('%.6f', b.opened_at), b.cause, b.probes,
                     s.state, s.failures, string.format('%.6f', s.opened_at), s.cause, s.probes})
"""


def _snap(state: Any, failures: Any, opened_at: Any, cause: Any, probes: Any) -> BreakerSnapshot:
    return BreakerSnapshot(BreakerState(state or "closed"), int(failures or 0), float(opened_at or 0.0),
                           cause or None, int(probes or 0))


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """What ``waystation breaker status`` shows of one shared breaker."""

    station: str
    state: str
    cause: str | None
    failures: int
    opened_at: float | None
    until: float | None
    probes: int


class RedisBreakerBackend:
    """Breaker state in Redis, shared by every process that uses the same URL and prefix."""

    def __init__(self, shared: SharedRedis) -> None:
        self.shared = shared

    async def _run(self, op: str, name: str, policy: BreakerPolicy, now: float, ok: bool | None = None,
                   cause: str | None = None) -> tuple[bool, BreakerSnapshot, BreakerSnapshot]:
        script = self.shared.script("breaker", _BREAKER_LUA)
        ttl_ms = int(max(policy.reset_after_exhausted, policy.reset_after) * 2000) + 3_600_000
        raw = await script(
            keys=[self.shared.key("breaker", name)],
            args=[op, repr(now), repr(policy.failure_threshold), repr(policy.reset_after),
                  repr(policy.half_open_max_calls), repr(policy.reset_after_exhausted),
                  "" if ok is None else ("1" if ok else "0"), cause or "", str(ttl_ms)],
        )
        v = json.loads(raw)
        return bool(v[0]), _snap(*v[1:6]), _snap(*v[6:11])

    async def acquire(self, name: str, policy: BreakerPolicy, now: float) -> tuple[bool, BreakerSnapshot,
                                                                                    BreakerSnapshot]:
        """Ask to make a call, atomically across processes."""
        return await self._run("acquire", name, policy, now)

    async def record(self, name: str, policy: BreakerPolicy, now: float, ok: bool | None,
                     cause: str | None) -> tuple[BreakerSnapshot, BreakerSnapshot]:
        """Record a call's result, atomically across processes."""
        _, before, after = await self._run("record", name, policy, now, ok, cause)
        return before, after

    async def reset(self, name: str) -> None:
        """Close the breaker for every process."""
        await self.shared.client().delete(self.shared.key("breaker", name))

    async def snapshot(self, name: str) -> BreakerSnapshot:
        """The current state as stored."""
        h = await self.shared.client().hmget(self.shared.key("breaker", name),
                                             ["state", "failures", "opened_at", "cause", "probes"])
        return _snap(*h)

    async def status(self, name: str) -> BreakerStatus:
        """The stored state with the time it lets a probe through, for listings."""
        h = await self.shared.client().hmget(self.shared.key("breaker", name),
                                             ["state", "failures", "opened_at", "cause", "probes", "until"])
        snap = _snap(*h[:5])
        return BreakerStatus(name, snap.state.value, snap.cause, snap.failures,
                             snap.opened_at or None, float(h[5]) if h[5] else None, snap.probes)

    async def names(self) -> list[str]:
        """Every station with stored (not plainly closed) breaker state under this prefix."""
        head = self.shared.key("breaker", "")
        out = [key[len(head):] async for key in self.shared.client().scan_iter(match=f"{head}*", count=500)]
        return sorted(out)


# ---------------------------------------------------------------------------------- rate limit

_RATE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
if nxt > now then
  return tostring(nxt - now)
end
redis.call('SET', KEYS[1], string.format('%d', now + interval), 'PX', math.floor(interval / 1000) + 1000)
return '0'
"""


class RedisRateLimiter:
    """A station's calls-per-second limit kept in Redis: all processes together stay under it.

    Calls are paced one interval (``1/per_second``) apart on the Redis clock, with no burst. When
    Redis cannot be reached, this process paces itself alone at ``per_second`` (with a warning)
    rather than stopping or calling unpaced.
    """

    warn_every = 30.0

    def __init__(self, shared: SharedRedis, name: str, per_second: float) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.shared = shared
        self.name = name
        self.per_second = per_second
        self.interval_us = max(1, round(1_000_000 / per_second))
        self._lock: asyncio.Lock | None = None
        self._local: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warned_at = -1e18

    async def acquire(self) -> None:
        """Wait until this process may make one more call."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            from aiolimiter import AsyncLimiter

            self._lock, self._loop = asyncio.Lock(), loop
            self._local = AsyncLimiter(1, 1.0 / self.per_second)
        async with self._lock:
            try:
                script = self.shared.script("rate", _RATE_LUA)
                key = self.shared.key("rate", self.name)
                while True:
                    wait_us = int(await script(keys=[key], args=[str(self.interval_us)]))
                    if wait_us <= 0:
                        return
                    await asyncio.sleep(wait_us / 1_000_000)
            except Exception as exc:
                now = loop.time()
                if now - self._warned_at >= self.warn_every:
                    self._warned_at = now
                    log.warning("rate limit of %s: Redis failed (%s: %s); pacing this process alone",
                                self.name, type(exc).__name__, exc)
        await self._local.acquire()


# ---------------------------------------------------------------------------------- concurrency

_SLOTS_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 1000)
  return 1
end
return 0
"""


class RedisConcurrency:
    """A station's cap on concurrent calls across every process: a semaphore in Redis.

    Each call holds a leased member of a sorted set (``<prefix>:slots:<station>``); a slot whose
    holder died frees itself after ``lease`` seconds. Waiters poll every ``poll`` seconds, one
    poller per process. When Redis fails, the call goes ahead under the per-process cap only.
    """

    warn_every = 30.0

    def __init__(self, shared: SharedRedis, name: str, limit: int, lease: float = 300.0,
                 poll: float = 0.01) -> None:
        self.shared = shared
        self.name = name
        self.limit = limit
        self.lease_ms = int(lease * 1000)
        self.poll = poll
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warned_at = -1e18

    def _warn(self, exc: Exception) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._warned_at >= self.warn_every:
            self._warned_at = now
            log.warning("concurrency cap of %s: Redis failed (%s: %s); capping this process alone",
                        self.name, type(exc).__name__, exc)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the ``limit`` slots shared by every process while the call runs."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop
        key = self.shared.key("slots", self.name)
        token = uuid.uuid4().hex
        held = False
        async with self._lock:
            try:
                script = self.shared.script("slots", _SLOTS_LUA)
                # polling Redis: another process frees the slot, no local event can tell us
                while not await script(keys=[key], args=[str(self.limit), str(self.lease_ms), token]):  # noqa: ASYNC110
                    await asyncio.sleep(self.poll)
                held = True
            except Exception as exc:
                self._warn(exc)
        try:
            yield
        finally:
            if held:
                try:
                    await self.shared.client().zrem(key, token)
                except Exception as exc:  # the lease frees it
                    self._warn(exc)
