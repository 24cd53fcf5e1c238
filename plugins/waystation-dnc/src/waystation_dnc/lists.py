"""The names of the lists a DNC store holds (a light module: no I/O, no heavy imports)."""

from __future__ import annotations

from typing import Literal

ListName = Literal["federal", "internal", "litigator"]
LISTS: tuple[ListName, ...] = ("federal", "internal", "litigator")
Action = Literal["add", "delete"]
OnListed = Literal["skip_remaining", "fail", "continue"]
#: The ``dnc_lists`` entry for a number whose area code has no federal full list loaded.
UNLOADED = "federal_area_code_not_loaded"
