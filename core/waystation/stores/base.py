"""What every checkpoint store shares: the JSON codec (refuses secrets), the counters, the queue of
deferred write failures, and id checks. The backends (:mod:`.sqlite`, :mod:`.redis`, :mod:`.memory`)
import from here, never from the package, so ``waystation.stores`` can pick one lazily without an
import cycle."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, SecretBytes, SecretStr

__all__ = ["DeferredErrors", "StoreStats", "dumps", "encode_queued", "load_state", "loads"]


@dataclass
class StoreStats:
    """Counters every store keeps: ``saves`` (calls), ``rows`` (rows/fields written after merging
    saves of the same lead within a batch) and ``transactions`` (commits / pipelines)."""

    saves: int = 0
    rows: int = 0
    transactions: int = 0
    loads: int = 0

    @property
    def saves_per_transaction(self) -> float:
        """Average batch size."""
        return self.saves / self.transactions if self.transactions else 0.0


def _default(obj: Any) -> Any:
    if isinstance(obj, SecretStr | SecretBytes):
        raise TypeError("refusing to checkpoint a secret value")
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"cannot checkpoint a value of type {type(obj).__name__}")


_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_default)

try:  # orjson encodes a lead state ~8x faster than the stdlib; the stdlib is the fallback
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency, but stay usable without it
    _orjson = None  # type: ignore[assignment]


def dumps(obj: Any) -> str:
    """Compact JSON for a state or a run's metadata (refuses secrets and unknown types)."""
    if _orjson is not None:
        try:
            return _orjson.dumps(obj, default=_default, option=_orjson.OPT_NON_STR_KEYS).decode()
        except _orjson.JSONEncodeError as exc:
            cause = exc.__cause__
            raise (cause if isinstance(cause, TypeError) else TypeError(str(exc))) from None
    return _encoder.encode(obj)


def loads(text: str | bytes) -> Any:
    """Parse what :func:`dumps` wrote."""
    return _orjson.loads(text) if _orjson is not None else json.loads(text)


def load_state(text: str | bytes, lead_id: str | bytes) -> Any:
    """A saved lead state; one that is not valid JSON (a corrupt or tampered store) comes back as
    ``{"lead_id": ..., "unreadable": reason}``, which :func:`waystation.saved.check_state`
    rejects, instead of an exception that would stop a batch."""
    try:
        return loads(text)
    except ValueError as exc:
        lid = lead_id.decode("utf-8", "replace") if isinstance(lead_id, bytes) else lead_id
        return {"lead_id": lid, "unreadable": f"not valid JSON ({str(exc).splitlines()[0][:120]})"}


class DeferredErrors:
    """Failures of queued (not waited-for) writes, raised by the next ``save()``: a failure that
    concerns one lead (its state could not be encoded) is raised by that lead's next save only;
    one that concerns the store (a failed commit) by the next save of any lead, and by close."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.by_lead: dict[tuple[str, str], BaseException] = {}

    def check(self, run_id: str | None = None, lead_id: str | None = None) -> None:
        """Raise the remembered failure (of the store, or of this lead), once."""
        if self.by_lead and run_id is not None and lead_id is not None:
            err = self.by_lead.pop((run_id, lead_id), None)
            if err is not None:
                raise err
        if self.error is not None:
            err, self.error = self.error, None
            raise RuntimeError(f"an earlier queued checkpoint write failed: {err}") from err


def _check_ids(run_id: str, lead_id: str | None = None) -> None:
    if not isinstance(run_id, str) or not run_id:
        raise ValueError("run_id must be a non-empty string")
    if lead_id is not None and (not isinstance(lead_id, str) or not lead_id):
        raise ValueError("lead_id must be a non-empty string")


def _query(url: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}


def encode_queued(run_id: str, lead_id: str, state: dict[str, Any], saved_at: float,
                  deferred: DeferredErrors) -> str | None:
    """The text of a queued (``save_nowait``) state, stamped with ``saved_at``; ``None`` when it
    cannot be encoded (a secret, an unknown type): the error is kept for that lead's next
    ``save()`` (the first one not yet raised wins), never blamed on another lead. Shared by every
    store's batch flush."""
    try:
        return dumps({**state, "saved_at": saved_at})
    except Exception as exc:
        deferred.by_lead.setdefault((run_id, lead_id), exc)
        return None
