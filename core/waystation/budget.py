"""Budgets that are never overshot: reserve before a paid call, settle after it.

Amounts are kept in integer micro-dollars so that sums are exact. ``reserve`` is synchronous and
does its check and its booking in one step with no ``await`` in between, so concurrent steps in
one event loop can never pass the same check (the check-then-spend race). A reservation carries a
lease: a store that persists reservations can expire those of a process that died, so killed
processes never leak reserved budget.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MICRO = 1_000_000
_ids = itertools.count(1)


def to_micros(amount: float) -> int:
    """USD → integer micro-dollars (rounded to the nearest)."""
    return round(amount * MICRO)


def from_micros(micros: int) -> float:
    """Integer micro-dollars → USD."""
    return micros / MICRO


@dataclass(slots=True)
class Reservation:
    """Money set aside for one call; ``lease_until`` (epoch seconds) after which it may be
    reclaimed if never settled."""

    id: int
    micros: int
    holder: str
    lease_until: float | None = None
    #: what a sweep does when the lease ran out: ``release`` (the holder died before its call) or
    #: ``spend`` (a restored intent: the call may have been billed, so it is counted as spent)
    on_expiry: str = "release"

    @property
    def amount(self) -> float:
        """The reserved amount in USD."""
        return from_micros(self.micros)


@dataclass(slots=True)
class Budget:
    """One pot of money (a lead's route budget, or a batch's ``--budget-total``).

    ``limit`` ``None`` means unlimited (reservations are still booked so that spend is known).
    Invariant: ``spent + reserved <= limit`` after every operation, as long as no call costs more
    than it reserved; an overrun is recorded in ``overrun`` and never hidden.
    """

    limit: float | None
    name: str = "budget"
    spent_micros: int = 0
    reservations: dict[int, Reservation] = field(default_factory=dict)
    overrun_micros: int = 0
    #: holders of restored intents whose lease ran out and that were booked as spent (micro-dollars)
    expired_spent: dict[str, int] = field(default_factory=dict)

    @property
    def limit_micros(self) -> int | None:
        """The limit in micro-dollars."""
        return None if self.limit is None else to_micros(self.limit)

    @property
    def reserved_micros(self) -> int:
        """Sum of open reservations."""
        return sum(r.micros for r in self.reservations.values())

    @property
    def spent(self) -> float:
        """Settled spend in USD."""
        return from_micros(self.spent_micros)

    @property
    def reserved(self) -> float:
        """Open reservations in USD."""
        return from_micros(self.reserved_micros)

    @property
    def remaining(self) -> float | None:
        """What may still be reserved (USD), or ``None`` when unlimited."""
        lim = self.limit_micros
        if lim is None:
            return None
        return from_micros(lim - self.spent_micros - self.reserved_micros)

    def fits(self, micros: int) -> bool:
        """Whether ``micros`` more could be reserved now."""
        lim = self.limit_micros
        return lim is None or self.spent_micros + self.reserved_micros + micros <= lim

    def reserve(self, amount: float, holder: str = "", lease_seconds: float | None = None) -> Reservation | None:
        """Set ``amount`` aside, or return ``None`` when it does not fit."""
        micros = to_micros(amount)
        if not self.fits(micros):
            return None
        return self._book(micros, holder, lease_seconds)

    def _book(self, micros: int, holder: str, lease_seconds: float | None) -> Reservation:
        lease = time.time() + lease_seconds if lease_seconds is not None else None
        res = Reservation(next(_ids), micros, holder, lease)
        self.reservations[res.id] = res
        return res

    def settle(self, reservation: Reservation, actual: float) -> int:
        """Turn a reservation into spend of ``actual`` USD; returns the overrun in micro-dollars
        (``actual`` above what was reserved), which is also added to ``overrun_micros``."""
        self.reservations.pop(reservation.id, None)
        micros = to_micros(actual)
        self.spent_micros += micros
        over = max(0, micros - reservation.micros)
        self.overrun_micros += over
        return over

    def release(self, reservation: Reservation) -> None:
        """Give a reservation back unspent (the call was not made)."""
        self.reservations.pop(reservation.id, None)

    def charge(self, amount: float) -> None:
        """Book spend that needed no reservation (restoring a checkpoint, a free-then-priced call)."""
        self.spent_micros += to_micros(amount)

    def charge_over(self, micros: int) -> int:
        """Book ``micros`` of spend that had no reservation; returns (and records in
        ``overrun_micros``) how far it took spend past the limit."""
        lim = self.limit_micros
        before = 0 if lim is None else max(0, self.spent_micros + self.reserved_micros - lim)
        self.spent_micros += micros
        after = 0 if lim is None else max(0, self.spent_micros + self.reserved_micros - lim)
        self.overrun_micros += after - before
        return after - before

    def expire_leases(self, now: float | None = None) -> list[Reservation]:
        """Settle reservations whose lease has run out (their holder died); returns them.

        An ordinary reservation is released; a restored intent (``on_expiry="spend"``) is booked
        as spent, since its call may have been billed, and its holder is remembered in
        ``expired_spent`` so that resuming that step does not book it twice."""
        now = time.time() if now is None else now
        dead = [r for r in self.reservations.values() if r.lease_until is not None and r.lease_until < now]
        for r in dead:
            del self.reservations[r.id]
            if r.on_expiry == "spend":
                self.spent_micros += r.micros
                self.expired_spent[r.holder] = self.expired_spent.get(r.holder, 0) + r.micros
        return dead


@dataclass(slots=True)
class Hold:
    """Reservations of the same call in several budgets (a lead's and a batch's), all or none."""

    parts: list[tuple[Budget, Reservation]]

    @property
    def amount(self) -> float:
        """The reserved amount (the same in every part)."""
        return self.parts[0][1].amount if self.parts else 0.0

    def settle(self, actual: float) -> int:
        """Settle every part; returns the overrun in micro-dollars."""
        over = 0
        for budget, res in self.parts:
            over = budget.settle(res, actual)
        return over

    def release(self) -> None:
        """Release every part."""
        for budget, res in self.parts:
            budget.release(res)


def reserve_all(budgets: Sequence[Budget], amount: float, holder: str = "",
                lease_seconds: float | None = None) -> Hold | None:
    """Reserve ``amount`` in every budget, or in none (returns ``None`` when any lacks room)."""
    micros = to_micros(amount)
    if not all(b.fits(micros) for b in budgets):
        return None
    return Hold([(b, b._book(micros, holder, lease_seconds)) for b in budgets])


def total(budgets: Iterable[Budget]) -> float:
    """Sum of settled spend."""
    return from_micros(sum(b.spent_micros for b in budgets))
