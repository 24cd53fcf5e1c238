"""Erasing a person: ``waystation forget (--lead-id ID | --phone N | --email E)``.

An erasure request (CCPA "right to delete", GDPR article 17) names a person by lead id, phone
number or e-mail address. Every place that keeps personal data erases what it holds about them
and says what it removed; the command prints that per place. Each place is a ``forget_person``
hook implementation (see ``docs/hooks.md``), so plugins and other subsystems plug in:

- the core: lead states in the checkpoint store (``--checkpoint``: SQLite, Redis, memory);
- ``waystation-sql``: rows of the SQL save table(s) of the route (``--route``) or of
  ``WAYSTATION_SQL_URL``;
- ``waystation-dnc``: the number in the local DNC store's *internal* list, only when asked
  (``--dnc-internal``: taking someone off a do-not-call list means they may be called again);
- caches, queues and ledgers of other subsystems, through the same hook.

A person matches when the lead id is one asked for, or when any text value in the lead (its input
or any step's outcome, nested values included) is one of the phone numbers (compared as digits,
a leading US ``1`` ignored) or e-mail addresses (compared case-insensitively). ``--dry-run``
reports what would be removed and removes nothing.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pluggy

    from waystation.route import Route


class HookHost(Protocol):
    """What :func:`forget_person` needs of the plugin host (:class:`waystation.plugins.PluginHost`
    is one): its plugin manager. This module is below the host, so it never imports it."""

    @property
    def pm(self) -> pluggy.PluginManager:
        """The plugin manager the hooks are called through."""
        ...

log = logging.getLogger("waystation.forget")

_DIGITS = re.compile(r"\D+")
_MAX_DEPTH = 8


def normalize_phone(text: object) -> str | None:
    """The digits of a phone number (a leading US/Canada ``1`` of an 11-digit number dropped), or
    ``None`` when it has fewer than 7 digits."""
    digits = _DIGITS.sub("", str(text))
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits if 7 <= len(digits) <= 15 else None


def normalize_email(text: object) -> str | None:
    """An e-mail address compared case-insensitively, or ``None`` when it is not one."""
    value = str(text).strip().lower()
    return value if "@" in value and len(value) <= 320 else None


def _normalized(values: Iterable[str], norm: Callable[[object], str | None], what: str) -> frozenset[str]:
    out = set()
    for value in values:
        n = norm(value)
        if n is None:
            raise ValueError(f"not {what}: {value!r}")
        out.add(n)
    return frozenset(out)


@dataclass(frozen=True)
class Erasure:
    """What one place removed: ``where`` (a store, a table, a list), ``what`` (lead states, rows,
    numbers...), how many, and an optional ``note`` (e.g. a source file that still lists it)."""

    where: str
    what: str
    count: int
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {"where": self.where, "what": self.what, "count": self.count, "note": self.note}


@dataclass(frozen=True)
class ForgetRequest:
    """Whom to erase and where to look (the argument of the ``forget_person`` hook).

    ``lead_ids``, ``phones`` (normalised digits) and ``emails`` (lower case) name the person;
    ``checkpoint`` is the checkpoint store URL, ``route`` the route whose stations' settings say
    where their data lives (``None``: their defaults and environment); ``dnc_internal`` asks to
    take the phone numbers off the DNC internal list too; ``dry_run`` removes nothing.
    """

    lead_ids: frozenset[str] = frozenset()
    phones: frozenset[str] = frozenset()
    emails: frozenset[str] = frozenset()
    checkpoint: str | None = None
    route: Route | None = None
    dnc_internal: bool = False
    dry_run: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, lead_ids: Iterable[str] = (), phones: Iterable[str] = (), emails: Iterable[str] = (),
              **kwargs: Any) -> ForgetRequest:
        """A request from what a user typed (phones and e-mails normalised); raises ``ValueError``
        when nothing usable names a person."""
        ids = frozenset(str(i) for i in lead_ids if str(i).strip())
        ph = _normalized(phones, normalize_phone, "a phone number")
        em = _normalized(emails, normalize_email, "an e-mail address")
        if not (ids or ph or em):
            raise ValueError("name the person: --lead-id, --phone or --email")
        return cls(ids, ph, em, **kwargs)

    def matches(self, lead_id: object, *records: Any) -> bool:
        """Whether a lead (its id and its records: input, outcomes...) is the person."""
        if lead_id is not None and str(lead_id) in self.lead_ids:
            return True
        if not (self.phones or self.emails):
            return False
        return any(self._contains(r, 0) for r in records)

    def _contains(self, value: Any, depth: int) -> bool:
        if isinstance(value, str):
            if self.emails and "@" in value and value.strip().lower() in self.emails:
                return True
            return bool(self.phones) and any(c.isdigit() for c in value) and normalize_phone(value) in self.phones
        if isinstance(value, int) and not isinstance(value, bool):
            return bool(self.phones) and normalize_phone(value) in self.phones
        if depth >= _MAX_DEPTH:
            return False
        if isinstance(value, Mapping):
            return any(self._contains(v, depth + 1) for v in value.values())
        if isinstance(value, list | tuple):
            return any(self._contains(v, depth + 1) for v in value)
        return False

    def matches_state(self, state: Mapping[str, Any]) -> bool:
        """Whether a saved lead state (:meth:`RunContext.to_state`) is the person's."""
        return self.matches(state.get("lead_id"), state.get("input"), state.get("outcomes"))

    def station_settings(self, station: str) -> list[dict[str, Any]]:
        """The ``settings:`` of every step of the route that uses ``station`` (``[{}]`` when there is
        no route: the station's defaults and environment apply)."""
        if self.route is None:
            return [{}]
        return [dict(s.settings) for s in self.route.spec.steps if s.station == station]

    def describe(self) -> str:
        """Whom this request names, for messages (masked: it is personal data)."""
        parts = []
        if self.lead_ids:
            parts.append(f"{len(self.lead_ids)} lead id(s)")
        if self.phones:
            parts.append(f"{len(self.phones)} phone number(s)")
        if self.emails:
            parts.append(f"{len(self.emails)} e-mail address(es)")
        return ", ".join(parts)


async def forget_person(request: ForgetRequest, host: HookHost) -> list[Erasure]:
    """Call every ``forget_person`` implementation; an implementation that raises is reported as an
    :class:`Erasure` with ``count=-1`` and the error in ``note`` (the others still run)."""
    out: list[Erasure] = []
    for impl in reversed(host.pm.hook.forget_person.get_hookimpls()):  # pluggy's call order
        result: Any
        try:
            result = impl.function(request=request) if "request" in impl.argnames else impl.function()
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            log.warning("forget_person of %s raised %s", impl.plugin_name, type(exc).__name__)
            out.append(Erasure(impl.plugin_name, "error", -1, f"{type(exc).__name__}: {exc}"))
            continue
        if result is None:
            continue
        if isinstance(result, Erasure):
            out.append(result)
        elif isinstance(result, Iterable):
            out.extend(e for e in result if isinstance(e, Erasure))
    return out


async def forget_checkpoints(request: ForgetRequest) -> list[Erasure]:
    """The core's part: lead states in the checkpoint store ``request.checkpoint``."""
    if not request.checkpoint:
        return []
    from waystation.stores import open_store, redact_url

    store = open_store(request.checkpoint)
    try:
        forget = getattr(store, "forget", None)
        if forget is None:
            return [Erasure(redact_url(request.checkpoint), "lead states", -1,
                            f"{type(store).__name__} cannot erase (no forget method)")]
        removed, runs = await forget(request.matches_state, dry_run=request.dry_run)
    finally:
        await store.close()
    note = f"in {runs} run(s)" if runs else ""
    return [Erasure(f"checkpoints {redact_url(request.checkpoint)}", "lead states", removed, note)]
