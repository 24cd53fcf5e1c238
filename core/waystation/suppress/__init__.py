"""The suppression ledger (``waystation suppress ...``) and the screen that applies it to every
route: see :mod:`waystation.suppress.ledger` and :mod:`waystation.suppress.screen`."""

from waystation.suppress.ledger import Entry, LedgerError, SuppressionLedger, ledger_path
from waystation.suppress.screen import SuppressionScreen, screen_from_env

__all__ = ["Entry", "LedgerError", "SuppressionLedger", "SuppressionScreen", "ledger_path", "screen_from_env"]
