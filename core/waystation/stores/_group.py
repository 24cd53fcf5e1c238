"""Group commit on the event loop (used by the Redis and memory stores), and the encoding of a
batch's lead states (queued states are encoded at flush time, the latest of each lead only).

``submit(item)`` queues an item and waits; one flusher task takes everything queued so far and
hands it to ``flush(batch)`` (one pipeline, one transaction), which returns one result per item;
when it returns, every waiter of the batch resumes with its result (or gets the exception). Items
queued while a flush runs form the next batch, so the batch size adapts to the load by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from waystation.stores.base import DeferredErrors, StoreStats, _check_ids, dumps, encode_queued

T = TypeVar("T")
R = TypeVar("R")


class GroupCommitter(Generic[T, R]):
    """Batches concurrent operations into one ``flush`` call; see the module docstring."""

    def __init__(self, flush: Callable[[list[T]], Awaitable[Sequence[R]]]) -> None:
        self._flush = flush
        self._pending: list[tuple[T, asyncio.Future[R] | None]] = []
        self._task: asyncio.Task[None] | None = None
        #: the failure of a flush holding queued items (nobody waits for them), for the owner to raise
        self.lost: BaseException | None = None

    async def submit(self, item: T) -> R:
        """Queue ``item`` and return its result once the batch holding it was flushed."""
        return await self.submit_nowait(item)

    def submit_nowait(self, item: T) -> asyncio.Future[R]:
        """Queue ``item``; the future resolves when its batch was flushed. Batches are flushed in
        order, so anything submitted later resolves only after this one is flushed."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, fut))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        return fut

    def queue(self, item: T) -> None:
        """Queue ``item`` with nobody waiting: a failed flush is kept in :attr:`lost`."""
        self._pending.append((item, None))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await self._flush([item for item, _ in batch])
            except BaseException as exc:
                err = exc if isinstance(exc, Exception) else RuntimeError(
                    f"checkpoint flush interrupted: {type(exc).__name__}")
                for _, fut in batch:
                    if fut is None:
                        self.lost = self.lost or err
                    elif not fut.done():
                        fut.set_exception(err)
                if not isinstance(exc, Exception):
                    raise
            else:
                for (_, fut), result in zip(batch, results, strict=True):
                    if fut is not None and not fut.done():
                        fut.set_result(result)

    async def drain(self) -> None:
        """Wait until nothing is queued or being flushed."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)


#: A lead save in a batch: (run_id, lead_id, payload). The payload is the encoded text (a waited
#: ``save``), or ``(state, saved_at)`` for a queued ``save_nowait`` not encoded yet.
LeadSave = tuple[str, str, "str | tuple[dict[str, Any], float]"]


def encode_latest(batch: Sequence[LeadSave], deferred: DeferredErrors) -> dict[tuple[str, str], str]:
    """The text to write for each lead of ``batch``: its latest save that encodes (a waited save
    is already text). A queued state that cannot be encoded (a secret, an unknown type) is skipped
    and its error kept for that lead's next ``save()``; an earlier save of the lead is written."""
    out: dict[tuple[str, str], str] = {}
    for run_id, lead_id, payload in reversed(batch):
        key = (run_id, lead_id)
        if key in out:
            continue
        text = payload if isinstance(payload, str) else encode_queued(run_id, lead_id, *payload, deferred)
        if text is not None:
            out[key] = text
    return out



class GroupedSaves:
    """``save`` / ``save_nowait`` over a :class:`GroupCommitter` of :data:`LeadSave` items, shared
    by the stores that batch on the event loop (memory, Redis); they set the four attributes."""

    stats: StoreStats
    _deferred: DeferredErrors
    _group: GroupCommitter[LeadSave, None]
    _closed: bool

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("checkpoint store is closed")

    def _check_lost(self) -> None:
        if self._group.lost is not None:
            self._deferred.error, self._group.lost = self._group.lost, None

    async def save(self, run_id: str, lead_id: str, state: dict[str, Any]) -> None:
        """Save a lead's state (a JSON snapshot); returns when the batch holding it is applied
        (for Redis: when the ``MULTI``/``EXEC`` holding it was executed)."""
        _check_ids(run_id, lead_id)
        self._check_open()
        self._check_lost()
        self._deferred.check(run_id, lead_id)
        text = dumps({**state, "saved_at": time.time()})
        self.stats.saves += 1
        await self._group.submit((run_id, lead_id, text))

    def save_nowait(self, run_id: str, lead_id: str, state: dict[str, Any]) -> None:
        """Queue a save without waiting for it (see :mod:`waystation.stores`, "Queued saves")."""
        _check_ids(run_id, lead_id)
        self._check_open()
        self.stats.saves += 1
        self._group.queue((run_id, lead_id, (state, time.time())))
