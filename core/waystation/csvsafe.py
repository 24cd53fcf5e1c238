"""CSV formula injection: cells that a spreadsheet would run as a formula, neutralised.

Excel, LibreOffice and Google Sheets treat a cell that starts with ``=``, ``+``, ``-`` or ``@``
(and, in some versions, a tab or a carriage return) as a formula: a lead whose name is
``=HYPERLINK("http://evil.example","x")`` or ``+1+cmd|' /C calc'!A0`` would run when someone opens
the enriched file. As OWASP recommends, such a cell is written with a leading single quote
(``'=HYPERLINK(...)``), which the spreadsheet shows as text; the csv module quotes it as needed.

Two kinds of values are left as they are, so that data stays usable: a plain number (``-5``,
``+3.25``, ``1e6``) and a phone number (E.164 ``+14155550100``, or written with spaces, dots,
dashes and parentheses, ``+1 (415) 555-0100``: with no letter it can name no function or cell).
For machine-to-machine files turn escaping off (``waystation run --csv-formulas keep``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: First characters that make a spreadsheet cell a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_PHONE = re.compile(r"\+[1-9](?:[ .\-]?\(?\d\)?){6,14}")


def is_dangerous(value: str) -> bool:
    """Whether ``value`` would be read as a formula (and is not a plain number or a phone number)."""
    return bool(value) and value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value) \
        and not _PHONE.fullmatch(value)


def escape_formula(value: str) -> str:
    """``value``, with a leading ``'`` when a spreadsheet would run it as a formula."""
    return "'" + value if is_dangerous(value) else value


def escape_row(cells: Iterable[str]) -> list[str]:
    """Every cell of a CSV row through :func:`escape_formula`."""
    return [escape_formula(c) for c in cells]
