"""``waystation forget`` writes to the suppression ledger: a person who asked to be forgotten is
erased everywhere else and *remembered here* (as keyed hashes only), so that no route looks them
up, buys or saves them again — also under a new lead id, also when a vendor re-sources them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from waystation.hooks import hookimpl
from waystation.suppress.ledger import EMAIL_FIELDS, PHONE_FIELDS, SuppressionLedger, ledger_path, values_of

if TYPE_CHECKING:
    from waystation.forget import Erasure, ForgetRequest


def _identifiers(state: Mapping[str, Any], phones: set[str], emails: set[str]) -> None:
    records = [state.get("input") or {}, *((state.get("outcomes") or {}).values())]
    for rec in records:
        if not isinstance(rec, Mapping):
            continue
        for f in PHONE_FIELDS:
            phones.update(str(v) for v in values_of(rec.get(f)))
        for f in EMAIL_FIELDS:
            emails.update(str(v) for v in values_of(rec.get(f)))


async def _from_checkpoints(request: ForgetRequest) -> tuple[set[str], set[str]]:
    """The phones and e-mails of the person's saved lead states (read without erasing: the core's
    own ``forget_person`` erases them)."""
    phones: set[str] = set()
    emails: set[str] = set()
    if not request.checkpoint:
        return phones, emails
    from waystation.stores import open_store

    store = open_store(request.checkpoint)
    try:
        forget = getattr(store, "forget", None)
        if forget is None:
            return phones, emails

        def collect(state: Mapping[str, Any]) -> bool:
            if request.matches_state(state):
                _identifiers(state, phones, emails)
                return True
            return False

        await forget(collect, dry_run=True)
    finally:
        await store.close()
    return phones, emails


class LedgerForget:
    """``forget_person`` implementation (plugin ``waystation.suppress.forget``, always registered):
    adds the person's phones and e-mails — those named in the request and those of their saved
    lead states — to the suppression ledger with reason ``erasure``. Runs first (``tryfirst``) so
    it reads the lead states before they are erased."""

    @hookimpl(tryfirst=True)
    async def forget_person(self, request: ForgetRequest) -> Erasure:
        """Suppress the person (keyed hashes only)."""
        from waystation.forget import Erasure

        phones, emails = await _from_checkpoints(request)
        phones |= set(request.phones)
        emails |= set(request.emails)
        where = f"suppression ledger {ledger_path()}"
        if request.dry_run:
            return Erasure(where, "entries", len(phones) + len(emails), "dry run: would add (keyed hashes)")
        added = 0
        with SuppressionLedger() as led:
            for value in phones:
                added += led.add(value, kind="phone", reason="erasure") is not None
            for value in emails:
                added += led.add(value, kind="email", reason="erasure") is not None
        note = ("added (keyed hashes): never looked up or bought again" if added
                else "no phone or e-mail known for this person: add them with 'waystation suppress add'")
        return Erasure(where, "entries", added, note)
