"""DNCScrubStation: is this phone number on a do-not-call list?

This module is imported when plugins load, so it imports only light modules; the store (SQLite,
file parsing) is imported in :meth:`DNCScrubStation.open`.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from waystation import Outcome, PermanentError, RetryPolicy, Station, StationSettings, StepContext
from waystation.dial.evidence import EVIDENCE_FIELD, LISTED, NOT_LISTED, NOT_LOADED, expires_after, utcnow
from waystation.dial.evidence import add as add_evidence
from waystation.dial.evidence import make as make_evidence

from waystation_dnc.lists import LISTS, UNLOADED, ListName, OnListed

if TYPE_CHECKING:
    from waystation_dnc.store import DNCStore

log = logging.getLogger("waystation.dnc")

DEFAULT_STORE = Path(".waystation/dnc.sqlite")
#: The evidence check of each list.
CHECK_OF = {"federal": "federal_dnc", "internal": "internal_dnc", "litigator": "litigator"}


class DNCSettings(StationSettings):
    """Settings of :class:`DNCScrubStation` (route ``settings:`` or ``WAYSTATION_DNC_*`` variables).

    Relative paths of the registry files written in a route are resolved against the route
    file's folder (so a route runs the same from any directory); the ``store`` path and values from
    environment variables are resolved against the current working directory.
    """

    model_config = SettingsConfigDict(env_prefix="WAYSTATION_DNC_", extra="forbid", frozen=True,
                                      env_ignore_empty=True)

    store: Path = Field(default=DEFAULT_STORE, description="The SQLite file of the local DNC store.")
    federal_files: list[Path] = Field(
        default_factory=list,
        description="FTC full-list files (plain, .gz or .zip; a directory means its files) imported on open.")
    change_files: list[Path] = Field(
        default_factory=list, description="FTC change-list files (or directories), applied once each, in name order.")
    internal_files: list[Path] = Field(
        default_factory=list, description="The internal do-not-call list (replaces the list when changed).")
    litigator_files: list[Path] = Field(
        default_factory=list, description="Known-litigator numbers (replaces the list when changed).")
    lists: list[ListName] = Field(default_factory=lambda: list(LISTS),
                                  description="The lists a number is checked against.")
    on_listed: OnListed = Field(default="skip_remaining",
                                description="What the route does when the number is listed.")
    unloaded_area_code: bool = Field(
        default=True,
        description="Treat a number as listed when no federal full list of its area code is loaded "
                    "(calling an area code you have not downloaded is not allowed).")
    max_age_days: float = Field(default=31, gt=0, description="Registry data older than this is stale.")
    on_stale: Literal["warn", "fail"] = Field(
        default="warn", description="Stale data: log a warning, or fail the step (nothing is scrubbed).")
    internal_valid_days: float = Field(
        default=10, gt=0, description="Days an internal-list check stays valid as evidence (opt-outs must be "
                                      "honoured within 10 business days).")


class DNCScrubStation(Station):
    """Scrub a phone number against the local Do-Not-Call store (federal, internal, litigator).

    Requires ``phone`` (E.164 ``+1...`` or any 10-digit US form); a ``phone_valid`` of false (from
    the identity station) makes the step a miss. Provides ``dnc_listed`` (bool)
    and ``dnc_lists`` (the lists that hold the number), and appends one evidence item per list
    checked to ``dial_evidence`` (``federal_dnc``, ``internal_dnc``, ``litigator``: the file and
    the date of its data; federal evidence expires ``max_age_days`` after the data's date). Its stop
    decision follows the setting ``on_listed`` (``skip_remaining`` by default), applied by the
    plugin's ``decide_stop`` hook.
    """

    name = "DNCScrubStation"
    gate = True  # later steps rely on its verdict: if it cannot run, the lead is held
    data_settings = ("federal_files", "change_files", "internal_files", "litigator_files")
    requires = ("phone",)
    optional = ("phone_valid", EVIDENCE_FIELD)
    provides = {"dnc_listed": bool, "dnc_lists": list[str], EVIDENCE_FIELD: list[dict[str, Any]]}
    cost = 0.0
    timeout = 10.0
    retry = RetryPolicy(max_attempts=1)
    Settings = DNCSettings

    def __init__(self, settings: StationSettings | None = None) -> None:
        super().__init__(settings)
        self._store: DNCStore | None = None
        self._loaded: set[int] = set()

    @property
    def config(self) -> DNCSettings:
        """The settings, typed."""
        assert isinstance(self.settings, DNCSettings)
        return self.settings

    def preflight(self) -> list[str]:
        """Every configured registry file or directory exists (checked before any lead runs)."""
        problems = []
        for key in self.data_settings:
            for path in getattr(self.config, key):
                if not Path(path).exists():
                    problems.append(f"{key}: {path} does not exist (relative paths in a route are read from "
                                    "the route file's folder)")
        return problems

    async def open(self) -> None:
        """Import the configured registry files (once each), then open the store for lookups."""
        loaded, stale = await asyncio.to_thread(prepare_store, self.config)
        from waystation_dnc.store import DNCStore

        self._store = DNCStore(self.config.store)
        self._loaded = loaded
        if "federal" in self.config.lists and not loaded:
            log.warning("DNC store %s has no federal registry data: %s", self.config.store,
                        "every number is treated as listed" if self.config.unloaded_area_code
                        else "numbers are checked against the other lists only")
        if stale and self.config.on_stale == "fail":
            raise PermanentError(f"DNC data in {self.config.store} is older than {self.config.max_age_days:g} "
                                 f"days ({stale}): download the registry and import it again")
        if stale:
            log.warning("DNC data in %s is older than %g days (%s): download the registry again",
                        self.config.store, self.config.max_age_days, stale)

    async def close(self) -> None:
        """Close the store."""
        if self._store is not None:
            self._store.close()
            self._store = None

    async def process(self, ctx: StepContext) -> Outcome:
        """Look the lead's phone up in every configured list."""
        from waystation_dnc.lists import scrub_target
        from waystation_dnc.store import area_code

        if self._store is None:
            await self.open()
        assert self._store is not None
        number = scrub_target(ctx.data)
        if isinstance(number, str):
            return Outcome(misses={"dnc_listed": number})
        lists: list[str] = list(self._store.lookup(number, self.config.lists))
        unloaded = "federal" in self.config.lists and area_code(number) not in self._loaded
        if "federal" in self.config.lists and "federal" not in lists and self.config.unloaded_area_code and unloaded:
            lists.append(UNLOADED)
        found = self._evidence(number, lists, unloaded)
        return Outcome({"dnc_listed": bool(lists), "dnc_lists": lists,
                        EVIDENCE_FIELD: add_evidence(ctx.data.get(EVIDENCE_FIELD), found)})

    def _evidence(self, number: int, listed: list[str], unloaded: bool) -> list[dict[str, Any]]:
        """One evidence item per list checked (see ``docs/compliance.md``)."""
        assert self._store is not None
        cfg = self.config
        now = utcnow()
        out = []
        for name, src in self._store.sources(number, cfg.lists).items():
            check = CHECK_OF[name]
            if src.as_of is None or (name == "federal" and unloaded):  # no data for this number: inconclusive
                result, expires = NOT_LOADED, expires_after(now, cfg.internal_valid_days)
            else:
                result = LISTED if name in listed else NOT_LISTED
                expires = (expires_after(now, cfg.internal_valid_days) if name == "internal"
                           else expires_after(src.as_of, cfg.max_age_days))
            out.append(make_evidence(check, result, station=self.name, phone=number, checked_at=now,
                                     expires_at=expires, file=Path(src.file).name if src.file else None,
                                     date=src.as_of))
        return out


def prepare_store(settings: DNCSettings) -> tuple[set[int], str | None]:
    """Import the files named in ``settings`` that the store has not seen (blocking; run it in a
    thread). Returns the federal area codes loaded and a description of stale lists (or None).

    Internal and litigator files are the whole list: when any of them changed, that list is
    rebuilt from all of its files. Federal full lists replace their area codes; change lists are
    applied once each.
    """
    from waystation_dnc.store import DNCStore, fingerprint

    with DNCStore(settings.store) as store:
        for path in expand(settings.federal_files):
            store.import_file(path, "federal")
        for path in expand(settings.change_files):
            store.import_file(path, "federal", changes=True)
        lists: tuple[tuple[ListName, list[Path]], ...] = (
            ("internal", expand(settings.internal_files)), ("litigator", expand(settings.litigator_files)))
        for name, files in lists:
            if not files:
                continue
            known = {row[0] for row in store.conn.execute(
                "SELECT fingerprint FROM imports WHERE list = ? AND kind = 'full'", (name,))}
            if all(p.is_file() and fingerprint(p) in known for p in files):
                continue
            for i, path in enumerate(files):
                store.import_file(path, name, replace=(i == 0), force=True)
        status = store.status()
        loaded = store.loaded_area_codes("federal")
    stale = [f"{s.list_name}: {s.age_days:.0f} days" for s in status.values()
             if s.list_name in settings.lists and s.age_days is not None and s.age_days > settings.max_age_days]
    return loaded, ", ".join(stale) or None


def expand(paths: list[Path]) -> list[Path]:
    """The files named by ``paths``: a directory stands for the files in it, sorted by name
    (hidden files and sub-directories are ignored)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")))
        else:
            out.append(p)
    return out


def stop_decision(settings: Any, fields: dict[str, Any]) -> tuple[str, str] | None:
    """The (stop, reason) for a DNCScrubStation outcome under ``settings.on_listed``, or None."""
    if not fields.get("dnc_listed"):
        return None
    mode = getattr(settings, "on_listed", "skip_remaining")
    if mode == "continue":
        return None
    lists = ", ".join(fields.get("dnc_lists") or []) or "a do-not-call list"
    return mode, f"phone is on {lists}: do not call"
