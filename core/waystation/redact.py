"""Keeping secrets out of texts: error messages, URLs, and every log record of the process.

Each :class:`~waystation.station.StationSettings` registers the values of its secret fields here
when it is created. From the first registration on, a log-record factory masks those values as
``***`` in every record's message and arguments, whichever library logs them (an HTTP client
logging a URL with a key in its query, a driver logging a connection string).

A secret is masked in every form it is sent in (:func:`variants`): as is, URL-encoded (``+``,
``/`` and ``=`` in a key become ``%2B``, ``%2F``, ``%3D``; ``quote_plus`` turns a space into
``+``), and base64-encoded (standard and URL-safe alphabets, with and without padding). A URL's
user name, password and secret-looking query parameters (``password=``, ``token=``, ``key=``...)
are masked by :func:`redact_url`, and URLs inside log messages are masked the same way.

Personal data in logs: by default every log record also has e-mail addresses replaced by
``[email]``, phone numbers (E.164 ``+14155550100``, ``(415) 555-0100``, ``415-555-0100``) by
``[phone]``, and the name, phone and e-mail values of the lead being processed (set per lead by
:func:`lead_scope`, from the ``before_lead`` hook of the core's defaults plugin) by ``[pii]``.
``waystation --log-pii`` (or ``WAYSTATION_LOG_PII=1``, or :func:`set_log_pii`) turns that off
for debugging; secrets stay masked whatever it says.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()  # every variant, longest first; replaced whole under the lock, read without it
_installed = False

#: Secret values shorter than this are not masked in logs (they would mask ordinary words).
MIN_LENGTH = 6


#: Query parameters whose value is masked by :func:`redact_url` (matched anywhere in the name).
SECRET_PARAM = re.compile(r"pass|pwd|secret|token|key|auth|sig|credential|session|cookie", re.IGNORECASE)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")


def variants(secret: str) -> set[str]:
    """``secret`` and the encoded forms it may travel in: URL-encoded (path and query styles) and
    base64 (standard and URL-safe, padded and not)."""
    out = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
    raw = secret.encode("utf-8", "surrogatepass")
    for enc in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = enc.decode("ascii")
        out |= {text, text.rstrip("=")}
    return {v for v in out if v}


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every value of ``secrets`` (in each of its :func:`variants`) replaced by ``***``."""
    for s in secrets:
        if not s:
            continue
        for v in sorted(variants(s), key=len, reverse=True):
            if v in text:
                text = text.replace(v, "***")
    return text


def redact_url(url: str) -> str:
    """``url`` with its user name, password and secret-looking query parameters (``password=``,
    ``token=``, ``api_key=``, ...) replaced by ``***`` (for messages, reports, run metadata and
    the printed resume command)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user, sep, _password = userinfo.partition(":")
            netloc = ("***" if user else "") + (":***" if sep else "") + "@" + host
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(SECRET_PARAM.search(k) for k, _ in pairs):
                query = urlencode([(k, "***" if SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*")
        if netloc == parts.netloc and query == parts.query:
            return url
        return parts._replace(netloc=netloc, query=query).geturl()
    except ValueError:  # not parseable as a URL: keep nothing that could be a secret
        return url.split("://", 1)[0] + "://***" if "://" in url else "***"


def redact_urls(text: str) -> str:
    """Every URL in ``text`` passed through :func:`redact_url`."""
    return _URL.sub(lambda m: redact_url(m.group()), text) if "://" in text else text


# -- personal data ------------------------------------------------------------------------------

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w.+])(?:\+\d{8,15}|(?:\+?1[\s.\-]?)?\(?\d{3}\)?[\s.\-]?\d{3}[\s.\-]\d{4}"
                    r"|\d{10})(?![\w.])")
#: Lead fields whose values are masked in the log records of that lead.
PII_FIELDS = frozenset({"first_name", "last_name", "middle_name", "full_name", "name", "contact_name",
                        "owner_name", "phone", "phones", "mobile", "email", "emails", "address", "street"})
_lead_pii: ContextVar[tuple[str, ...]] = ContextVar("waystation_lead_pii", default=())
_show_pii = os.environ.get("WAYSTATION_LOG_PII", "").strip().lower() in ("1", "true", "yes", "on")


def set_log_pii(show: bool) -> None:
    """``True``: log records keep personal data (``--log-pii``, for debugging); ``False`` (the
    default): phones, e-mails and the current lead's names are masked."""
    global _show_pii
    _show_pii = show
    install()


def log_pii_shown() -> bool:
    """Whether log records keep personal data."""
    return _show_pii


def lead_scope(lead: Mapping[str, Any]) -> None:
    """Mask this lead's names, phones and e-mails in log records from the current context on
    (every task the lead's run creates inherits it)."""
    values = set()
    for key, value in lead.items():
        if str(key).lower() in PII_FIELDS:
            for v in (value if isinstance(value, list | tuple) else (value,)):
                if isinstance(v, str | int) and not isinstance(v, bool) and len(str(v).strip()) >= 2:
                    values.add(str(v).strip())
    _lead_pii.set(tuple(sorted(values, key=len, reverse=True)))


def mask_pii(text: str) -> str:
    """``text`` with e-mails, phone numbers and the current lead's personal values masked."""
    for v in _lead_pii.get():
        if v in text:
            text = re.sub(r"(?<!\w)" + re.escape(v) + r"(?!\w)", "[pii]", text)
    if "@" in text:
        text = _EMAIL.sub("[email]", text)
    return _PHONE.sub("[phone]", text)


def _mask_text(text: str, secrets: tuple[str, ...]) -> str:
    for s in secrets:  # already expanded to every variant, longest first
        if s in text:
            text = text.replace(s, "***")
    text = redact_urls(text)
    return text if _show_pii else mask_pii(text)


def _mask(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return _mask_text(value, secrets)
    if isinstance(value, int | float | bool) or value is None:
        return value
    text = str(value)
    masked = _mask_text(text, secrets)
    return masked if masked != text else value


def _install() -> None:
    global _installed
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        secrets = _secrets
        if isinstance(record.msg, str):
            record.msg = _mask_text(record.msg, secrets)
        if isinstance(record.args, tuple):
            record.args = tuple(_mask(a, secrets) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _mask(v, secrets) for k, v in record.args.items()}
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def protect(secrets: Iterable[str]) -> None:
    """Mask these values in every log record from now on (values shorter than ``MIN_LENGTH`` are
    ignored)."""
    new = {v for s in secrets if s and len(s) >= MIN_LENGTH for v in variants(s) if len(v) >= MIN_LENGTH}
    if not new:
        install()
        return
    global _secrets
    with _lock:
        if new <= set(_secrets):
            return
        # longest first: a secret's URL-encoded form is masked whole, not around its raw prefix
        _secrets = tuple(sorted(set(_secrets) | new, key=len, reverse=True))
        if not _installed:
            _install()


def install() -> None:
    """Install the log-record factory (URLs in log messages masked) even before any secret is
    registered; idempotent."""
    with _lock:
        if not _installed:
            _install()
