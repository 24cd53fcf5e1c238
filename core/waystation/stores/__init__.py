"""Checkpoint stores: where lead states and run metadata are saved, so a batch survives a crash.

Three implementations of one :class:`CheckpointStore` protocol, picked by URL with :func:`open_store`:

``sqlite:///path/to/file.db``
    The embedded default (``sqlite://`` alone means ``.waystation/checkpoints.db``). One file, WAL
    mode, no server. Stdlib :mod:`sqlite3`: a dedicated writer thread owns the writing
    connection and gets whole batches (one hand-off per batch); reads go through a second
    connection on the caller's thread (under WAL a reader sees the last commit and never waits for
    the writer). aiosqlite was measured as the alternative (``bench/checkpoint.py``: the same
    group-commit throughput by hand), but it costs a thread round trip per call (``BEGIN``,
    insert, ``COMMIT``, every read) where this costs one per batch, and it is one dependency less.
    Query options: ``synchronous=full|normal`` (default ``full``), ``busy_timeout`` (ms).
``redis://host:port/db?ttl=604800&prefix=waystation``
    For workers on several machines (redis-py asyncio). ``ttl`` in seconds (default 7 days, ``0``
    = no expiry), ``prefix`` for the keys (default ``waystation``).
``memory://``
    In-process dicts, for tests. Same semantics (states are JSON round-tripped on save).

Group commit
------------
``save()`` returns only when the write is durable, but writers never wait for each other one by
one: every ``save()`` issued while a commit is in progress joins the *next* batch, and a batch is
one SQLite transaction (a multi-row upsert + ``COMMIT``) or one Redis ``MULTI``/``EXEC`` pipeline.
When the batch is done every waiter in it resumes. So with N leads in flight the cost of a
commit (an ``fsync``, a network round trip) is shared by up to N writes, and nothing is ever
acknowledged before it is on disk. Several saves of the same lead in one batch are written once
(the latest wins: it contains everything the earlier ones did, since states are whole snapshots).

Queued saves: ``save_nowait(run_id, lead_id, state)`` (every store has it; it is not part of the
protocol, the engine uses it when present) queues a write in the same order as ``save()`` but
does not wait for it. The engine uses it after a *free* step: if the process dies before the
batch commits, the free step simply runs again on resume. Paid steps (the intent before the call,
the result after it) and the end of every lead are saved with ``save()`` and waited for; since
batches commit in order, a waited save also means every write queued before it is durable. A
queued write that fails makes the store's next ``save()`` / ``close()`` raise, so a lost
checkpoint never goes unnoticed. A queued state is encoded only when its batch is flushed, and
only the latest one of each lead in the batch (so pass a fresh ``to_state()`` snapshot and leave
it alone); an encoding failure (a secret, an unknown type) is raised by that lead's next
``save()``, never blamed on another lead.

Durability, SQLite: ``PRAGMA synchronous=FULL`` by default. Under WAL, ``NORMAL`` already
survives a killed *process* (the commit is in the WAL file in the OS page cache), but a power
loss or kernel crash can roll back the last transactions, because the WAL is only fsynced at
checkpoints. ``FULL`` fsyncs the WAL at every commit; group commit makes that one fsync per batch
instead of one per write, so the stronger guarantee costs little (see ``bench/checkpoint.py``).
Durability, Redis: "durable" means the ``EXEC`` was answered (the server applied it); how it
survives a server crash is the server's ``appendonly``/``appendfsync`` setting.

TTL on Redis is set in the same ``MULTI``/``EXEC`` as the write (``HSET`` + ``EXPIRE`` of the
run's hash), never as a separate command that a crash could skip. A run's lead states live in one
hash that expires as a unit: a resumed run never finds some of its leads expired (which would
re-buy their paid lookups) while others remain.

Budget leases: nothing to leak
-------------------------------
Reservations of the batch budget live in memory only, in the process that made them. The
persisted record of a reservation is the step's *intent* (``intent: true`` + ``pending_cost``),
saved durably before the paid call. :func:`budget_ledger` recomputes a run's spend from the saved
lead states alone: settled spend (each state's ``spent_micros``) plus, conservatively, the pending
cost of every intent (the call may have been made and billed). A killed process therefore leaks
nothing: its unsaved reservations vanish with it, its saved intents are counted as spend. An
intent is *live* (its process may still be running) until its lease runs out
(``lease_seconds`` after the state was saved, as the engine's ``lease_seconds``); after that it
is *in doubt*. Both count as spend; :meth:`BudgetLedger.restore` books them into a fresh batch
:class:`~waystation.budget.Budget` (settled spend as ``spent_micros``, each intent as a
reservation held by ``"<lead_id>/<step_id>"``, which the engine releases when it resumes that step
and charges the in-doubt cost), so a restarted batch can never overshoot what the dead one spent.

Secrets: states come from :meth:`RunContext.to_state`, which never includes settings; the JSON
encoder refuses :class:`pydantic.SecretStr`/``SecretBytes`` values outright.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from waystation.budget import Budget, Reservation
from waystation.redact import redact_url
from waystation.stores.base import (  # re-exported: the names every store shares
    DeferredErrors,
    StoreStats,
    dumps,
    load_state,
    loads,
)

__all__ = [
    "DEFAULT_SQLITE_URL",
    "BudgetLedger",
    "CheckpointStore",
    "DeferredErrors",
    "LiveIntent",
    "StoreStats",
    "budget_ledger",
    "check_store_url",
    "dumps",
    "load_state",
    "loads",
    "open_store",
    "redact_url",
]

_restored_ids = itertools.count(-1, -1)

#: Where ``--checkpoint`` points when not given.
DEFAULT_SQLITE_URL = "sqlite:///.waystation/checkpoints.db"


@runtime_checkable
class CheckpointStore(Protocol):
    """Saves lead states and run metadata. Every implementation passes the same conformance suite
    (``tests/core/test_stores.py``)."""

    url: str

    async def load(self, run_id: str, lead_id: str) -> dict[str, Any] | None:
        """The saved state of a lead in a run, or ``None``. States come back as saved plus a
        ``saved_at`` key (epoch seconds of the save; :func:`budget_ledger` uses it for leases)."""
        ...

    async def save(self, run_id: str, lead_id: str, state: dict[str, Any]) -> None:
        """Save (replace) a lead's state; returns only when the write is durable."""
        ...

    def iter_states(self, run_id: str) -> AsyncIterator[dict[str, Any]]:
        """Every lead state of a run, in pages (memory stays flat)."""
        ...

    async def save_run(self, run_id: str, meta: dict[str, Any]) -> None:
        """Save (replace) a run's metadata (route, input, options, report); durable on return."""
        ...

    async def load_run(self, run_id: str) -> dict[str, Any] | None:
        """A run's metadata as saved, or ``None``."""
        ...

    async def list_runs(self) -> list[dict[str, Any]]:
        """Every run, oldest first: its metadata plus ``run_id``, ``created_at``, ``updated_at``."""
        ...

    async def delete_run(self, run_id: str) -> None:
        """Forget a run: its metadata and every lead state."""
        ...

    async def close(self) -> None:
        """Flush pending writes and release the connection."""
        ...


class LiveIntent(BaseModel):
    """A saved intent: a paid call that may have been made but whose result was not saved."""

    lead_id: str
    step_id: str
    micros: int
    saved_at: float | None = None
    expired: bool = True


class BudgetLedger(BaseModel):
    """A run's spend, recomputed from its saved lead states (see the module docstring)."""

    run_id: str
    lease_seconds: float = 900.0
    leads: int = 0
    finished: int = 0
    spent_micros: int = 0
    intents: list[LiveIntent] = Field(default_factory=list)
    #: saved states left out because they cannot be trusted: "<lead id>: <reason>" (first 100)
    rejected: list[str] = Field(default_factory=list)

    @property
    def intent_micros(self) -> int:
        """Pending cost of all intents (live or in doubt)."""
        return sum(i.micros for i in self.intents)

    @property
    def in_doubt_calls(self) -> int:
        """Intents whose lease expired: their process is gone."""
        return sum(1 for i in self.intents if i.expired)

    @property
    def total_micros(self) -> int:
        """Settled spend plus every intent's pending cost: what the run may have been billed."""
        return self.spent_micros + self.intent_micros

    @property
    def total(self) -> float:
        """:attr:`total_micros` in USD."""
        return self.total_micros / 1_000_000

    def restore(self, budget: Budget) -> Budget:
        """Book this ledger into a fresh batch budget: settled spend, and one reservation per
        intent held by ``"<lead_id>/<step_id>"`` (the engine releases it when it resumes the step
        and charges the in-doubt cost instead). Returns ``budget``."""
        budget.spent_micros = self.spent_micros
        for intent in self.intents:  # negative ids: never confused with the engine's own holds
            holder = f"{intent.lead_id}/{intent.step_id}"
            if intent.expired:  # its process is gone: the call may have been billed, count it as spent
                budget.spent_micros += intent.micros
                budget.expired_spent[holder] = budget.expired_spent.get(holder, 0) + intent.micros
                continue
            lease = (intent.saved_at + self.lease_seconds) if intent.saved_at is not None else None
            res = Reservation(next(_restored_ids), intent.micros, holder, lease, on_expiry="spend")
            budget.reservations[res.id] = res
        return budget


async def budget_ledger(store: CheckpointStore, run_id: str, *, lease_seconds: float = 900.0,
                        now: float | None = None) -> BudgetLedger:
    """Recompute a run's spend from its saved lead states (one pass, memory flat)."""
    now = time.time() if now is None else now
    ledger = BudgetLedger(run_id=run_id, lease_seconds=lease_seconds)
    from waystation.saved import check_state

    async for state in store.iter_states(run_id):
        problem = check_state(state)
        if problem is not None:  # tampered or corrupt: never trusted (a negative spend is no credit)
            if len(ledger.rejected) < 100:
                lid = state.get("lead_id") if isinstance(state, dict) else None
                ledger.rejected.append(f"{str(lid)[:60]}: {problem}")
            spent = state.get("spent_micros") if isinstance(state, dict) else None
            if isinstance(spent, int) and not isinstance(spent, bool) and spent > 0:
                ledger.spent_micros += spent  # conservative: a positive spend may be real
            continue
        ledger.leads += 1
        if state.get("status", "running") != "running":
            ledger.finished += 1
        ledger.spent_micros += int(state.get("spent_micros", 0))
        saved_at = state.get("saved_at")
        for step_id, rec in (state.get("steps") or {}).items():
            if rec.get("intent"):
                micros = round(float(rec.get("pending_cost", 0.0)) * 1_000_000)
                expired = saved_at is None or float(saved_at) + lease_seconds < now
                ledger.intents.append(LiveIntent(lead_id=str(state.get("lead_id")), step_id=step_id,
                                                 micros=micros, saved_at=saved_at, expired=expired))
    return ledger


_STORE_SCHEMES = ("sqlite", "redis", "rediss", "unix", "memory")


def check_store_url(url: str) -> str:
    """``url`` if it names a checkpoint store correctly, else ``ValueError`` naming the mistake.

    ``sqlite:///relative/path.db`` (three slashes: relative to the working directory),
    ``sqlite:////absolute/path.db`` (four: absolute), ``sqlite://`` (the default file),
    ``redis://[:password@]host:port/db``, ``rediss://…``, ``unix:///socket``, ``memory://``.
    """
    text = url.strip()
    shown = redact_url(text)
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in _STORE_SCHEMES:
        if not sep or "/" in scheme or "." in scheme or len(scheme) == 1:
            raise ValueError(f"checkpoint {shown!r} is not a URL: write sqlite:///{text.lstrip('/')} for a "
                             f"relative path or sqlite:////{text.lstrip('/')} for an absolute one")
        raise ValueError(f"unknown checkpoint store URL {shown!r} (scheme {scheme!r}): use sqlite:///path, "
                         "redis://host:port/db or memory://")
    if scheme == "sqlite":
        if not rest.startswith("//"):
            path = rest.lstrip("/")
            raise ValueError(f"checkpoint URL {shown!r} needs // after 'sqlite:': write sqlite:///{path} for "
                             f"the relative path {path}, or sqlite:////{path} for the absolute path /{path}")
        parts = urlsplit(text)
        if parts.netloc:
            raise ValueError(f"checkpoint URL {shown!r} has a host part ({parts.netloc!r}): write "
                             f"sqlite:///{parts.netloc}{parts.path} (three slashes) for a file path")
    elif scheme in ("redis", "rediss") and not rest.startswith("//"):
        raise ValueError(f"checkpoint URL {shown!r} needs // after '{scheme}:': write "
                         f"{scheme}://host:6379/0")
    return text


def open_store(url: str) -> CheckpointStore:
    """Open the store a URL names: ``sqlite:///path``, ``redis://host:port/db?ttl=&prefix=``,
    ``memory://``. Raises ``ValueError`` naming the mistake for anything else
    (:func:`check_store_url`)."""
    url = check_store_url(url)
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        from waystation.stores.sqlite import SQLiteStore

        return SQLiteStore(url)
    if scheme in ("redis", "rediss", "unix"):
        from waystation.stores.redis import RedisStore

        return RedisStore(url)
    if scheme == "memory":
        from waystation.stores.memory import MemoryStore

        return MemoryStore(url)
    raise ValueError(f"unknown checkpoint store URL {redact_url(url)!r}: use sqlite:///path, "
                     "redis://host:port/db or memory://")
