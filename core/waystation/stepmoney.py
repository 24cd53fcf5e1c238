"""One step's money, owned by one structure from ``reserve`` to ``settle``/``release``.

:class:`StepMoney` is an async context manager the engine opens around every step that may cost
money. Inside it a step reserves its declared cost before each call (``reserve``), says when a
call went out (``called``), and books what the call cost (``book``). Whatever ends the block —
success, a failure, a timeout, a cancellation, a raising hook, a checkpoint store that failed —
``__aexit__`` settles what is still open:

- a reservation whose call never went out is released;
- a reservation whose call went out but was never booked (the result was lost to a cancellation,
  a timeout, or an error after the call) is booked at the reserved amount: the vendor may have
  billed it, and money is counted conservatively, never lost.

So no reservation outlives its step, and every vendor call that happened is in the ledger. A
billed failed attempt is booked at what it cost, and the next attempt must reserve again: when
the budget cannot cover it, the step stops retrying (:meth:`StepMoney.reserve` returns ``False``).
Spend above a reservation (a station that cost more than it declared) is an *overrun*: it is
booked, added to each budget's ``overrun_micros`` and to :attr:`StepMoney.overrun`.

The in-process budgets (the lead's, the batch's) are booked synchronously, before any ``await``,
so a cancellation can never separate a call from its booking. A budget *shared* with other
processes (a worker fleet's, see :class:`SharedBudget`) is reserved, settled and
released after them; those calls are shielded from cancellation (its lease is the last fallback).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from types import TracebackType
from typing import Any, Protocol

from waystation.budget import Budget, Hold, from_micros, reserve_all, to_micros
from waystation.result import StepRecord


class SharedBudget(Protocol):
    """A budget shared by several processes (a worker fleet's ``--budget-total``, see
    :class:`waystation.worker.fleet.FleetBudget`). The engine reserves a paid step's cost here
    after its in-process budgets, and settles or releases it exactly like them; ``holder`` is
    ``"<lead_id>/<step_id>"``."""

    async def reserve(self, holder: str, amount: float) -> bool:
        """Reserve ``amount``; ``False`` when it does not fit."""
        ...

    async def settle(self, holder: str, amount: float) -> None:
        """Turn the reservation into spend of ``amount``."""
        ...

    async def release(self, holder: str) -> None:
        """Give the reservation back."""
        ...

    async def charge(self, amount: float) -> None:
        """Book spend that had no reservation."""
        ...

    async def charge_in_doubt(self, holder: str, amount: float) -> None:
        """Book a call whose result was lost in a crash (its reservation may have expired)."""
        ...


#: :attr:`StepMoney.refused_by` when the shared (fleet) budget had no room.
SHARED = Budget(None, name="shared")


async def _finish(aw: Awaitable[Any]) -> None:
    """Await ``aw`` to its end even if the caller is being cancelled."""
    task = asyncio.ensure_future(aw)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(task), timeout=5)
        raise


class StepMoney:
    """The budget reservation(s) of one step (see the module docstring).

    ``budgets``: every in-process pot the step spends from (the lead's, and the batch's when there
    is one); ``holder``: ``"<lead_id>/<step_id>"``; ``declared``: what one call reserves (USD);
    ``rec``: the step's record, whose ``cost`` grows with every booking; ``shared``: a budget
    shared with other processes, if any.
    """

    __slots__ = ("_called", "_shared_held", "booked_micros", "budgets", "declared", "hold", "holder",
                 "lease_seconds", "overrun_micros", "rec", "refused_by", "shared")

    def __init__(self, budgets: Sequence[Budget], holder: str, declared: float, rec: StepRecord,
                 lease_seconds: float | None = None, shared: SharedBudget | None = None) -> None:
        self.budgets = list(budgets)
        self.holder = holder
        self.declared = declared
        self.rec = rec
        self.lease_seconds = lease_seconds
        self.shared = shared
        self.hold: Hold | None = None
        self._called = False
        self._shared_held = False
        self.booked_micros = 0
        self.overrun_micros = 0
        #: the budget that had no room when :meth:`reserve` failed (:data:`SHARED` for the shared one)
        self.refused_by: Budget | None = None

    async def __aenter__(self) -> StepMoney:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- the life of one call -----------------------------------------------------------------

    @property
    def reserved(self) -> float:
        """What the open reservation holds (USD), 0 when none is open."""
        return self.hold.amount if self.hold is not None else 0.0

    @property
    def overrun(self) -> float:
        """Spend booked above what was reserved (USD)."""
        return from_micros(self.overrun_micros)

    @property
    def booked(self) -> float:
        """Everything this step booked (USD)."""
        return from_micros(self.booked_micros)

    async def reserve(self) -> bool:
        """Reserve the declared cost of one call in every budget, or in none.

        ``False`` when a budget lacks room (:attr:`refused_by` names the first); a previous open
        reservation is settled first (see :meth:`close`). A step with no declared cost reserves
        nothing and always may go on."""
        await self.close()
        if self.declared <= 0:
            return True
        micros = to_micros(self.declared)
        for b in self.budgets:
            if not b.fits(micros):
                self.refused_by = b
                return False
        self.hold = reserve_all(self.budgets, self.declared, self.holder, self.lease_seconds)
        if self.hold is None:  # pragma: no cover - checked just above, with no await in between
            return False
        if self.shared is not None:
            try:
                fits = await self.shared.reserve(self.holder, self.declared)
            except BaseException:
                self.hold.release()
                self.hold = None
                raise
            if not fits:
                self.hold.release()
                self.hold = None
                self.refused_by = SHARED
                return False
            self._shared_held = True
        return True

    def called(self) -> None:
        """The vendor call of the open reservation went out: from now on it is booked, never
        released (at the reserved amount if nothing better is known)."""
        self._called = True

    async def book(self, amount: float) -> float:
        """Book ``amount`` (USD) for the current call: settle the open reservation at that amount
        (or charge every budget when none is open). Returns what was booked."""
        micros = max(0, to_micros(amount))
        over = 0
        if self.hold is not None:
            over = self.hold.settle(from_micros(micros))
            self.hold = None
        elif micros:
            for b in self.budgets:
                over = max(over, b.charge_over(micros))
        self._called = False
        self.booked_micros += micros
        self.overrun_micros += over
        self.rec.cost += from_micros(micros)
        if self.shared is not None:
            if self._shared_held:
                self._shared_held = False
                await _finish(self.shared.settle(self.holder, from_micros(micros)))
            elif micros:
                await _finish(self.shared.charge(from_micros(micros)))
        return from_micros(micros)

    async def release(self) -> None:
        """Give back the open reservation: its call did not go out. (A call that did go out is
        booked at the reserved amount instead — see :meth:`close`.)"""
        if self._called:
            return
        if self.hold is not None:
            self.hold.release()
            self.hold = None
        if self._shared_held and self.shared is not None:
            self._shared_held = False
            await _finish(self.shared.release(self.holder))

    async def unbilled(self) -> None:
        """The call went out but failed in a way its station says was not billed (a failure with
        no ``incurred_cost``): give the reservation back."""
        self._called = False
        await self.release()

    async def close(self) -> None:
        """Settle whatever is open: release an unused reservation, book one whose call went out."""
        if self.hold is None and not self._shared_held:
            self._called = False
            return
        if self._called:
            await self.book(self.reserved)
        else:
            await self.release()

    async def in_doubt(self, holder: str, micros: int) -> None:
        """Book, in the shared budget, a call whose result was lost in a crash."""
        if self.shared is not None and micros:
            await _finish(self.shared.charge_in_doubt(holder, from_micros(micros)))
