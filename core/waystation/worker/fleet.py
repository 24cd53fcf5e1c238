"""A run's budget shared by every worker of the fleet: reserved atomically in Redis (one Lua script).

The engine reserves a paid step's declared cost in its lead budget and, for a worker run, here
too (:class:`FleetBudget` is the engine's ``shared_budget``). All operations are one Lua script,
so N workers can never pass the same check together. Keys (``<run>`` in braces: one slot)::

    <prefix>:run:{<run>}:budget     hash: limit (micro-USD, absent = none), spent, reserved, expired
    <prefix>:run:{<run>}:res        hash: holder ("<lead_id>/<step_id>") -> reserved micro-USD
    <prefix>:run:{<run>}:leases     sorted set: holder -> lease end (ms, Redis clock)
    <prefix>:run:{<run>}:indoubt    hash: holder -> micro-USD counted as spent when its lease ran out

Leases: a reservation lives ``lease`` seconds and the worker that holds it renews it while the
step runs (:meth:`FleetBudget.renew`, from the worker's heartbeat). A worker that dies stops
renewing; at the next operation its reservations *expire*: since the call may have been made and
billed, an expired reservation is counted as **spent** (in doubt) rather than given back, so the
budget is never overshot. When the lead is redelivered and its step resumes, the engine books the
in-doubt call (:meth:`charge_in_doubt`); a reservation already counted at expiry is not counted
twice. A step that ends normally after its lease ran out (a frozen process) settles the real
amount, replacing the in-doubt one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from waystation.budget import to_micros

log = logging.getLogger("waystation.worker.fleet")

_FLEET_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local B, R, L, D = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local op, h, m, lease, cap, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
  tonumber(ARGV[6])
local dead = redis.call('ZRANGEBYSCORE', L, '-inf', now)
for _, d in ipairs(dead) do
  local dm = tonumber(redis.call('HGET', R, d) or '0')
  redis.call('HDEL', R, d)
  redis.call('ZREM', L, d)
  redis.call('HINCRBY', B, 'reserved', -dm)
  redis.call('HINCRBY', B, 'spent', dm)
  redis.call('HINCRBY', D, d, dm)
  redis.call('HINCRBY', B, 'expired', 1)
end
local function drop(holder)
  local r = redis.call('HGET', R, holder)
  if not r then return nil end
  redis.call('HDEL', R, holder)
  redis.call('ZREM', L, holder)
  redis.call('HINCRBY', B, 'reserved', -tonumber(r))
  return tonumber(r)
end
local function undoubt(holder)
  local d = redis.call('HGET', D, holder)
  if not d then return nil end
  redis.call('HDEL', D, holder)
  return tonumber(d)
end
local result = 1
if op == 'reserve' then
  drop(h)
  local spent = tonumber(redis.call('HGET', B, 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', B, 'reserved') or '0')
  local limit = redis.call('HGET', B, 'limit')
  local lim = -1
  if limit and limit ~= '' then lim = tonumber(limit) end
  if cap >= 0 and (lim < 0 or cap < lim) then lim = cap end
  if lim >= 0 and spent + reserved + m > lim then
    result = 0
  else
    redis.call('HSET', R, h, m)
    redis.call('ZADD', L, now + lease, h)
    redis.call('HINCRBY', B, 'reserved', m)
  end
elseif op == 'settle' then
  if not drop(h) then
    local d = undoubt(h)
    if d then redis.call('HINCRBY', B, 'spent', -d) end
  end
  redis.call('HINCRBY', B, 'spent', m)
elseif op == 'release' then
  if not drop(h) then
    local d = undoubt(h)
    if d then redis.call('HINCRBY', B, 'spent', -d) end
  end
elseif op == 'charge' then
  redis.call('HINCRBY', B, 'spent', m)
elseif op == 'indoubt' then
  if not drop(h) then
    if undoubt(h) then m = 0 end
  end
  redis.call('HINCRBY', B, 'spent', m)
elseif op == 'renew' then
  for i = 7, #ARGV do
    if redis.call('ZSCORE', L, ARGV[i]) then redis.call('ZADD', L, now + lease, ARGV[i]) end
  end
elseif op == 'limit' then
  if m >= 0 then redis.call('HSETNX', B, 'limit', m) end
end
if ttl > 0 then
  for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ttl) end
end
return result
"""


def fleet_keys(prefix: str, run_id: str) -> list[str]:
    """The four keys of a run's fleet budget."""
    base = f"{prefix}:run:{{{run_id}}}"
    return [f"{base}:budget", f"{base}:res", f"{base}:leases", f"{base}:indoubt"]


class FleetBudget:
    """One run's budget shared by every worker (see the module docstring).

    ``client`` is a redis-py asyncio client; ``cap`` (USD) is this worker's own
    ``--budget-total``: the stricter of it and the run's stored limit applies. ``lease`` is in
    seconds. Amounts are USD floats at the interface, integer micro-USD in Redis.
    """

    def __init__(self, client: Any, prefix: str, run_id: str, *, cap: float | None = None,
                 lease: float = 60.0, ttl: int = 7 * 24 * 3600) -> None:
        self.client = client
        self.keys = fleet_keys(prefix, run_id)
        self.run_id = run_id
        self.cap_micros = -1 if cap is None else to_micros(cap)
        self.lease_ms = int(lease * 1000)
        self.ttl = ttl
        self.live: set[str] = set()
        self._script = client.register_script(_FLEET_LUA)

    async def _op(self, op: str, holder: str = "", micros: int = 0, *extra: str) -> int:
        args = [op, holder, str(micros), str(self.lease_ms), str(self.cap_micros), str(self.ttl), *extra]
        return int(await self._script(keys=self.keys, args=args))

    async def set_limit(self, limit: float | None) -> None:
        """Store the run's limit unless one is stored already (``None``: leave it unlimited)."""
        if limit is not None:
            await self._op("limit", "", to_micros(limit))

    async def reserve(self, holder: str, amount: float) -> bool:
        """Reserve ``amount`` for ``holder``; ``False`` when it does not fit the fleet budget."""
        ok = bool(await self._op("reserve", holder, to_micros(amount)))
        if ok:
            self.live.add(holder)
        return ok

    async def settle(self, holder: str, amount: float) -> None:
        """Turn ``holder``'s reservation into spend of ``amount``."""
        self.live.discard(holder)
        await self._op("settle", holder, to_micros(amount))

    async def release(self, holder: str) -> None:
        """Give ``holder``'s reservation back (no call was charged)."""
        self.live.discard(holder)
        await self._op("release", holder)

    async def charge(self, amount: float) -> None:
        """Book spend that had no reservation (a failed call the vendor billed)."""
        if amount:
            await self._op("charge", "", to_micros(amount))

    async def charge_in_doubt(self, holder: str, amount: float) -> None:
        """Book a call lost in a crash (the engine resumes a step whose intent was saved)."""
        self.live.discard(holder)
        await self._op("indoubt", holder, to_micros(amount))

    async def renew(self) -> None:
        """Extend the lease of every reservation this worker holds."""
        if self.live:
            await self._op("renew", "", 0, *sorted(self.live))

    async def status(self) -> dict[str, Any]:
        """``limit``, ``spent``, ``reserved`` (USD) and ``expired`` leases, read after expiring leases."""
        await self._op("noop")
        raw = await self.client.hgetall(self.keys[0])
        vals = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
        limit = vals.get("limit")
        return {"limit": None if limit is None else limit / 1e6, "spent": vals.get("spent", 0) / 1e6,
                "reserved": vals.get("reserved", 0) / 1e6, "expired_leases": vals.get("expired", 0)}


async def renew_forever(budgets: dict[str, FleetBudget], every: float) -> None:
    """Renew the leases of every fleet budget of this process every ``every`` seconds."""
    while True:
        await asyncio.sleep(every)
        for fb in list(budgets.values()):
            try:
                await fb.renew()
            except Exception as exc:  # Redis away: the next round tries again; leases outlast a few misses
                log.warning("could not renew budget leases of run %s: %s", fb.run_id, exc)
