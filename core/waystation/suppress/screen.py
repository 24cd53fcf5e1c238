"""The core's suppression screen: a hook implementation that refuses every step of a lead whose
phone or e-mail is on the suppression ledger, before anything is looked up, bought or saved."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from waystation.hooks import hookimpl
from waystation.suppress.ledger import EMAIL_FIELDS, PHONE_FIELDS, SuppressionLedger, ledger_path

_MEMO_SIZE = 4096


class SuppressionScreen:
    """``screen_step`` implementation (registered as ``waystation.suppress`` when the ledger file
    exists). A ledger that cannot be read, or whose secret is missing, refuses every step: a
    screen that could not run never lets a lead through."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = ledger_path(path)
        self._ledger: SuppressionLedger | None = None
        self._memo: dict[tuple[Any, ...], str | None] = {}

    def _open(self) -> SuppressionLedger:
        if self._ledger is None:
            self._ledger = SuppressionLedger(self.path, create=False)
        return self._ledger

    def close(self) -> None:
        """Close the ledger file."""
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    def forget_memo(self) -> None:
        """Drop remembered answers (after the ledger changed in this process)."""
        self._memo.clear()

    def reason(self, data: Mapping[str, Any]) -> str | None:
        """Why the lead ``data`` must not go on, or ``None``."""
        key = tuple(repr(data.get(f)) for f in (*PHONE_FIELDS, *EMAIL_FIELDS))
        if key in self._memo:
            return self._memo[key]
        entry = self._open().match(data)
        answer = None if entry is None else (
            f"suppressed: the lead's {entry.kind} is on the suppression ledger ({entry.reason}, requested "
            f"{entry.requested_at[:10]})")
        if len(self._memo) >= _MEMO_SIZE:
            self._memo.clear()
        self._memo[key] = answer
        return answer

    @hookimpl
    def screen_step(self, data: Mapping[str, Any]) -> str | None:
        """Refuse the step when the lead's phone or e-mail is suppressed."""
        return self.reason(data)


def screen_from_env() -> SuppressionScreen | None:
    """A screen on the configured ledger, or ``None`` when there is no ledger file."""
    path = ledger_path()
    return SuppressionScreen(path) if Path(path).exists() else None
