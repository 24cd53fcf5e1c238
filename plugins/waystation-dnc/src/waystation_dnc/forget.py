"""``waystation forget --dnc-internal``: the person's numbers off the DNC store's internal list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from waystation.forget import Erasure

from waystation_dnc.stations import DNCSettings, expand
from waystation_dnc.store import DNCStore, iter_sources, normalize_number


def _listed_in(files: list[Path], numbers: set[int]) -> list[str]:
    """The internal-list source files that still hold one of ``numbers``."""
    found = []
    for path in expand(files):
        for _source, lines in iter_sources(path):
            if any(normalize_number(line.split(",")[0]) in numbers for line in lines):
                found.append(str(path))
                break
    return found


def forget_internal(request: Any) -> list[Erasure]:
    """Delete the request's phone numbers from the internal list of every DNC store the route uses."""
    numbers = {n for n in (normalize_number(p) for p in request.phones) if n is not None}
    out: list[Erasure] = []
    seen: set[Path] = set()
    for values in request.station_settings("DNCScrubStation") or [{}]:
        settings = DNCSettings(**values)
        path = Path(settings.store)
        if path in seen:
            continue
        seen.add(path)
        if not path.is_file():
            continue
        with DNCStore(path) as store:
            marks = ",".join("?" * len(numbers))
            sql = f"FROM numbers WHERE list = 'internal' AND number IN ({marks})"  # only placeholders are formatted in
            count = int(store.conn.execute(f"SELECT COUNT(*) {sql}", tuple(numbers)).fetchone()[0])
            if count and not request.dry_run:
                with store.conn:
                    store.conn.execute(f"DELETE {sql}", tuple(numbers))
        still = _listed_in(list(settings.internal_files), numbers)
        note = (f"still listed in {', '.join(still)}: remove it there too, or the next import adds it back"
                if still else "")
        out.append(Erasure(f"DNC store {path}", "internal-list numbers", count, note))
    return out
