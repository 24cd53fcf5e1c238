"""Group commit on the event loop (used by the Redis and memory stores).

``submit(item)`` queues an item and waits; one flusher task takes everything queued so far and
hands it to ``flush(batch)`` (one pipeline, one transaction), which returns one result per item;
when it returns, every waiter of the batch resumes with its result (or gets the exception). Items
queued while a flush runs form the next batch, so the batch size adapts to the load by itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommitter(Generic[T, R]):
    """Batches concurrent operations into one ``flush`` call; see the module docstring."""

    def __init__(self, flush: Callable[[list[T]], Awaitable[Sequence[R]]]) -> None:
        self._flush = flush
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

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

    async def _run(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await self._flush([item for item, _ in batch])
            except BaseException as exc:
                err = exc if isinstance(exc, Exception) else RuntimeError(
                    f"checkpoint flush interrupted: {type(exc).__name__}")
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(err)
                if not isinstance(exc, Exception):
                    raise
            else:
                for (_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)

    async def drain(self) -> None:
        """Wait until nothing is queued or being flushed."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
