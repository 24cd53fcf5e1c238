"""The names of the lists a DNC store holds (a light module: no I/O, no heavy imports)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

ListName = Literal["federal", "internal", "litigator"]
LISTS: tuple[ListName, ...] = ("federal", "internal", "litigator")
Action = Literal["add", "delete"]
OnListed = Literal["skip_remaining", "fail", "continue"]
#: The ``dnc_lists`` entry for a number whose area code has no federal full list loaded.
UNLOADED = "federal_area_code_not_loaded"


def scrub_target(data: Mapping[str, Any]) -> int | str:
    """The 10-digit US number a lead's ``phone`` is, or the reason there is nothing to scrub
    (shared by the local and the paid DNC stations)."""
    from waystation_dnc.store import normalize_number

    phone = str(data.get("phone") or "")
    if data.get("phone_valid") is False:
        return "the phone number is not valid: nothing to scrub"
    if phone.startswith("+") and not phone.startswith("+1"):
        return "not a US/NANP number: the US registry does not apply"
    number = normalize_number(phone)
    if number is None:
        return "phone is not a 10-digit US number"
    return number
