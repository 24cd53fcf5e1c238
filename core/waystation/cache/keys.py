"""Cache keys: what makes two lookups "the same question" to a vendor.

A key is the SHA-256 of a canonical JSON document holding

- the station's name and version (the plugin distribution's version plus the station's own
  ``cache_version``: bump it when the answer's shape or meaning changes);
- the settings that change the answer: every non-secret setting by default, or only those the
  station names in ``cache_settings`` (a secret — an API key — never enters a key);
- the normalised values of the inputs the station reads: ``requires`` + ``optional``, never
  the whole lead (a changed ``notes`` column must not cost a new lookup).

Normalisation: text is Unicode-NFKC normalised, trimmed, inner whitespace collapsed to one
space and case-folded; empty text and ``None`` count as absent; numbers and booleans are kept
as they are. So ``" Jane  DOE "`` and ``"jane doe"`` share an entry.

*Subjects*: every cache entry also stores hashed tokens of the identifiers it holds — every phone
number and e-mail address among its inputs and returned fields, and the id of the lead that stored
it — ``sha256("phone:<digits>")``, ``sha256("email:<address>")``, ``sha256("lead:<id>")``.
``waystation forget`` erases a person's entries by those tokens without the cache ever being
searchable by plain value.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import SecretBytes, SecretStr

from waystation.station import StationSettings

_SPACE = re.compile(r"\s+")


def normalise(value: Any) -> Any:
    """The canonical form of one input value (see the module docstring); ``None`` when absent."""
    if value is None:
        return None
    if isinstance(value, bool | int | float):
        return value
    text = _SPACE.sub(" ", unicodedata.normalize("NFKC", str(value))).strip().casefold()
    return text or None


def normalised_inputs(data: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """The normalised value of each of ``fields`` present in ``data`` (absent ones left out)."""
    out: dict[str, Any] = {}
    for f in sorted(set(fields)):
        v = normalise(data.get(f))
        if v is not None:
            out[f] = v
    return out


def answer_settings(settings: StationSettings | None, names: Iterable[str] | None = None) -> dict[str, Any]:
    """The settings that change a station's answer: ``names`` if given, else every setting; secret
    values are always left out."""
    if settings is None:
        return {}
    wanted = set(names) if names is not None else set(type(settings).model_fields)
    out: dict[str, Any] = {}
    for name in sorted(wanted):
        if name not in type(settings).model_fields:
            continue
        value = getattr(settings, name)
        if isinstance(value, SecretStr | SecretBytes):
            continue
        out[name] = value
    return json.loads(json.dumps(out, default=str, sort_keys=True))  # type: ignore[no-any-return]


def cache_key(station: str, version: str, settings: Mapping[str, Any], inputs: Mapping[str, Any]) -> str:
    """The key of one lookup (hex SHA-256; see the module docstring)."""
    doc = json.dumps({"s": station, "v": version, "cfg": dict(settings), "in": dict(inputs)},
                     sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(doc.encode()).hexdigest()


def subject_token(kind: str, value: str) -> str:
    """The hashed token of one identifier: ``kind`` is ``phone`` (value: digits, as
    :func:`waystation.forget.normalize_phone` gives them), ``email`` (lower case) or ``lead``."""
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()[:40]


def subject_tokens(*parts: Mapping[str, Any], lead_id: str | None = None) -> tuple[str, ...]:
    """Tokens of every phone number and e-mail address among the plain values of ``parts``
    (inputs, returned fields), and of the lead that stored the entry: what ``waystation forget``
    names a person by."""
    from waystation.forget import normalize_email, normalize_phone

    tokens: set[str] = set()
    if lead_id:
        tokens.add(subject_token("lead", str(lead_id)))
    for part in parts:
        for v in part.values():
            if isinstance(v, bool) or not isinstance(v, str | int):
                continue
            text = str(v)
            if "@" in text:
                email = normalize_email(text)
                if email is not None:
                    tokens.add(subject_token("email", email))
            elif any(c.isdigit() for c in text):
                phone = normalize_phone(text)
                if phone is not None:
                    tokens.add(subject_token("phone", phone))
    return tuple(sorted(tokens))
