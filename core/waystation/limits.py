"""Bounds on everything waystation reads from outside: routes, conditions and field names.

A route, a condition or a lead file comes from someone else. Each is refused fast, with a
one-line error naming the limit it broke, well before it could take seconds of CPU or gigabytes
of memory (a YAML "billion laughs", 20,000-deep nesting, a 10,000-step chain, a 100,000-character
condition). The limits are generous for any route a person writes; see docs/security.md.
"""

from __future__ import annotations

import re
from typing import Final

#: Largest route file, in bytes.
MAX_ROUTE_BYTES: Final = 1 << 20
#: Default largest field (characters) / JSONL line (bytes) accepted in a lead file
#: (``--max-field-size``).
MAX_FIELD_SIZE: Final = 1 << 20
#: Most YAML nodes a route may expand to (aliases count once per use: a "billion laughs" stops here).
MAX_ROUTE_NODES: Final = 20_000
#: Deepest nesting of mappings and lists in a route.
MAX_ROUTE_DEPTH: Final = 40
#: Most steps in a route.
MAX_STEPS: Final = 256
#: Most errors reported for one route (the rest are counted, not printed).
MAX_REPORTED_ERRORS: Final = 50
#: Longest ``condition:``, in characters.
MAX_CONDITION_LENGTH: Final = 4096
#: Deepest nesting of ``not`` and parentheses in a condition.
MAX_CONDITION_DEPTH: Final = 32
#: Longest number literal in a condition, in characters.
MAX_NUMBER_LENGTH: Final = 40
#: Longest field name (and step id), in characters (PostgreSQL's identifier limit is 63 bytes).
MAX_NAME_LENGTH: Final = 63

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")

#: Column names a database reserves for itself (PostgreSQL system columns, SQLite row ids): a
#: field by one of these names would collide with them.
RESERVED_COLUMNS: Final = frozenset({
    "oid", "tableoid", "xmin", "xmax", "cmin", "cmax", "ctid",  # PostgreSQL
    "rowid", "_rowid_",  # SQLite ("oid" above too)
})
#: Names the output already uses for its own columns.
RESERVED_FIELDS: Final = frozenset({"_lead_id", "_status", "_reason", "_cost"})


def field_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a field name (one that becomes an output column, an SQL column or
    a metric label), or ``None`` when it is fine: identifier-like (a letter or ``_``, then letters,
    digits, ``_`` or ``-``), at most :data:`MAX_NAME_LENGTH` characters, not reserved."""
    if not isinstance(name, str):
        return f"a field name must be text, not {type(name).__name__}"
    if len(name) > MAX_NAME_LENGTH:
        return f"field name {name[:20]!r}... is {len(name):,} characters, more than the limit of {MAX_NAME_LENGTH}"
    if not _FIELD.fullmatch(name):
        return (f"field name {name!r} is not identifier-like (a letter or '_', then letters, digits, '_' "
                "or '-')")
    if name.lower() in RESERVED_COLUMNS or name in RESERVED_FIELDS:
        return f"field name {name!r} is reserved"
    return None
