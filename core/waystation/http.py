"""HTTP for station authors: one small, documented way to call a vendor safely.

A station that talks to a vendor over HTTP builds one :class:`VendorClient` in ``open()`` and
calls it in ``process()``::

    from waystation.http import Credentials, VendorClient

    async def open(self) -> None:
        s = self.settings
        self.http = VendorClient(self.name, s.base_url, vendor="Acme", hosts=self.vendor_hosts,
                                 credentials=Credentials(headers={"X-Api-Key": s.api_key}),
                                 allow_hosts=s.allow_hosts, max_bytes=s.max_response_bytes,
                                 timeout=s.http_timeout)
        await self.http.open()

    async def process(self, ctx):
        resp = await self.http.get(f"v1/lookup/{path_segment(ctx.data['phone'])}")
        resp.raise_for_status(auth_hint="check ACME_API_KEY")     # 401 -> AuthError, 429 -> ThrottledError, ...
        body = await resp.parse(LookupModel)                       # pydantic, off the event loop when large

What it gives every station, so that none of them writes it again:

- **One pooled client per station, process-wide** (:func:`shared_client`): stations of the same
  name share one ``httpx.AsyncClient`` (connection pooling, ``max_connections`` from settings)
  for as long as any of them is open in the event loop; building a client per call costs ~20 ms
  of CPU, a shared one a few.
- **Capped bodies** (:func:`read_capped`): every body is streamed; the bytes on the wire and the
  decoded bytes (gzip/deflate are decoded here, with a bound on the output) are both capped at
  ``max_bytes`` (default :data:`DEFAULT_MAX_BYTES`, 5 MiB); a larger body is
  :class:`ResponseTooLarge`, never a memory blow-up (a gzip bomb stops at the cap).
- **Errors in the core's categories** (:func:`error_for_status`): 401/403 auth, 402 (and quota
  429s) exhausted, 429 throttled *with its wait* (``Retry-After`` or the vendor's reset header,
  :func:`retry_after_from_headers`), 404 not found, 400/422 bad request, 408 timeout, 5xx server
  error; transport failures are :class:`~waystation.errors.VendorTimeout` /
  :class:`~waystation.errors.TransientError`; a body that is not JSON, truncated, or of the wrong
  shape is :class:`BadResponse` (a retried server error with its reason).
- **Credentials only to their vendor** (:class:`Credentials`, :class:`HostPolicy`): the key is
  attached per request, only to ``https`` URLs of the station's declared ``vendor_hosts`` — or to
  hosts a route explicitly allows (``allow_hosts``: a proxy or a test server, http allowed), an
  override printed by ``waystation check`` and at the start of ``waystation run`` (and logged when
  the station opens). Anywhere else the
  request is refused (:class:`CredentialRefused`) and nothing is sent.
- **Redirects only to the same host** (``follow_redirects=True``); a redirect to another host is
  :class:`RedirectRefused`. TLS certificates are always verified: there is no switch to turn it off.
- **Path parameters quoted** (:func:`path_segment`): ``../../admin`` cannot climb out of a path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from urllib.parse import quote, urljoin, urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import NoDecode

from waystation.errors import (
    AuthError,
    PermanentError,
    QuotaExhaustedError,
    ServerError,
    StepError,
    ThrottledError,
    TransientError,
    VendorTimeout,
)
from waystation.plan import credential_override, credential_overrides  # re-exported: they moved to plan
from waystation.resilience.policies import parse_reset, parse_retry_after, retry_after_from_headers
from waystation.station import StationSettings

if TYPE_CHECKING:
    import httpx


__all__ = [
    "DEFAULT_MAX_BYTES",
    "BadRequestError",
    "BadResponse",
    "CredentialRefused",
    "Credentials",
    "HostPolicy",
    "NotFoundError",
    "RedirectRefused",
    "ResponseTooLarge",
    "VendorClient",
    "VendorResponse",
    "VendorSettings",
    "classify_status",
    "credential_override",
    "credential_overrides",
    "error_for_status",
    "parse_reset",
    "parse_retry_after",
    "path_segment",
    "read_capped",
    "retry_after_from_headers",
    "shared_client",
]

log = logging.getLogger("waystation.http")

M = TypeVar("M", bound=BaseModel)

#: Default cap on a response body, on the wire and decoded (bytes).
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
#: Bodies larger than this are parsed in a worker thread (``asyncio.to_thread``), not on the loop.
OFFLOAD_BYTES = 64 * 1024
#: Redirects followed at most (same host only).
MAX_REDIRECTS = 5


# --------------------------------------------------------------------------- errors


class ResponseTooLarge(PermanentError):
    """The vendor's body is larger than the station's ``max_response_bytes`` (on the wire or
    decoded): reading stopped at the cap. Not retried (the same request gives the same body)."""

    category = "permanent"


class BadResponse(ServerError):
    """The vendor answered a body that is not what its API promises: not JSON, truncated, or of
    the wrong shape. Retried like a 5xx (a vendor glitch), with the reason in the message."""


class RedirectRefused(PermanentError):
    """The vendor redirected to another host (or redirected too often): not followed."""


class CredentialRefused(PermanentError):
    """A request with the station's key would have gone to a host that may not receive it (not
    https, not a declared vendor host, not allowed by the route): nothing was sent."""

    category = "auth"


class NotFoundError(PermanentError):
    """The vendor answered 404 (most stations turn it into a reasoned miss instead)."""

    category = "not_found"


class BadRequestError(PermanentError):
    """The vendor refused the request as malformed (400, 422): our request or configuration is
    wrong, not the lead — the step fails (a gate then holds the lead), it is never a verdict."""

    category = "bad_request"


# --------------------------------------------------------------------------- settings

#: A list of hosts in settings: YAML list, JSON list or comma-separated text in the environment.
HostList = Annotated[tuple[str, ...], NoDecode]


class VendorSettings(StationSettings):
    """Settings every HTTP station shares (subclass it for your station's settings).

    - ``max_response_bytes``: cap on a response body, on the wire and decoded (default 5 MiB);
    - ``allow_hosts``: hosts (``host`` or ``host:port``, or a URL) besides the station's declared
      vendor hosts that may receive its key, over http too — a proxy or a test server. Printed as a
      warning when the station opens and by ``waystation run`` / ``check``;
    - ``max_connections``: connections of the station's pooled client;
    - ``http_timeout``: seconds per HTTP request.
    """

    max_response_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1024, le=512 * 1024 * 1024,
                                    description="Cap on a response body, compressed and decoded (bytes).")
    allow_hosts: HostList = Field(
        default=(), description="Hosts besides the vendor's own that may receive the key (a proxy, a test "
                                "server); http allowed for them. Printed at preflight.")
    max_connections: int = Field(default=20, ge=1, le=1000, description="Pooled connections of the station.")
    http_timeout: float = Field(default=15.0, gt=0, description="Seconds per HTTP request.")

    @field_validator("allow_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return tuple(json.loads(value))
            return tuple(p for p in (s.strip() for s in value.split(",")) if p)
        return value

    @field_validator("allow_hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_host_entry(v) for v in value)


def _host_entry(value: str) -> str:
    """``http://127.0.0.1:8080/x`` → ``127.0.0.1:8080``; ``Example.COM`` → ``example.com``."""
    text = value.strip()
    if "://" in text:
        parts = urlsplit(text)
        if not parts.hostname:
            raise ValueError(f"not a host or URL: {value!r}")
        return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
    if not text or "/" in text or " " in text:
        raise ValueError(f"not a host (host or host:port): {value!r}")
    return text.lower()


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class HostPolicy:
    """Which URLs may receive a station's credentials.

    ``hosts``: the vendor's own hosts (exact names, or ``.example.com`` for every sub-domain),
    https only. ``allowed``: hosts a route explicitly allows (``host`` for any port, or
    ``host:port``), http or https.
    """

    hosts: tuple[str, ...]
    allowed: tuple[str, ...] = ()

    def permits(self, url: str | httpx.URL) -> bool:
        """Whether a request to ``url`` may carry the credentials."""
        parts = urlsplit(str(url))
        host = (parts.hostname or "").lower()
        if not host:
            return False
        try:
            port = parts.port
        except ValueError:
            return False
        if host in self.allowed or (port is not None and f"{host}:{port}" in self.allowed):
            return parts.scheme in ("http", "https")
        if parts.scheme != "https":
            return False
        return any(host == h or (h.startswith(".") and host.endswith(h)) for h in self.hosts)

    def overridden(self, url: str) -> bool:
        """Whether ``url`` is permitted only because a route allowed it."""
        return self.permits(url) and not HostPolicy(self.hosts).permits(url)


@dataclass(frozen=True)
class Credentials:
    """A station's credentials: headers and/or query parameters, attached per request only where
    the :class:`HostPolicy` permits. Values may be :class:`~pydantic.SecretStr`; empty values are
    left out (and :attr:`present` is false: the station should refuse to call without a key)."""

    headers: Mapping[str, SecretStr | str | None] = field(default_factory=dict)
    params: Mapping[str, SecretStr | str | None] = field(default_factory=dict)
    #: How a header value is built from the secret, e.g. ``"Bearer {}"``.
    header_format: Mapping[str, str] = field(default_factory=dict)

    @staticmethod
    def _plain(value: SecretStr | str | None) -> str:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        return value or ""

    @property
    def present(self) -> bool:
        """Whether every credential has a value."""
        values = [*self.headers.values(), *self.params.values()]
        return bool(values) and all(self._plain(v) for v in values)

    def header_values(self) -> dict[str, str]:
        """The headers to send (empty values left out)."""
        out = {}
        for k, v in self.headers.items():
            plain = self._plain(v)
            if plain:
                out[k] = self.header_format.get(k, "{}").format(plain)
        return out

    def param_values(self) -> dict[str, str]:
        """The query parameters to send (empty values left out)."""
        return {k: p for k, v in self.params.items() if (p := self._plain(v))}


# --------------------------------------------------------------------------- statuses


def classify_status(status: int) -> str:
    """The core's category of an HTTP status: ``ok``, ``redirect``, ``auth`` (401/403),
    ``exhausted`` (402), ``throttled`` (429), ``not_found`` (404, 410), ``timeout`` (408),
    ``bad_request`` (other 4xx), ``server_error`` (5xx)."""
    if 200 <= status < 300:
        return "ok"
    if 300 <= status < 400:
        return "redirect"
    if status in (401, 403):
        return "auth"
    if status == 402:
        return "exhausted"
    if status == 429:
        return "throttled"
    if status in (404, 410):
        return "not_found"
    if status == 408:
        return "timeout"
    if 400 <= status < 500:
        return "bad_request"
    return "server_error"


def error_for_status(status: int, headers: Mapping[str, str] | Any, *, vendor: str, detail: str = "",
                     auth_hint: str = "", quota: bool = False) -> StepError | None:
    """The step error an HTTP answer means (``None`` for 2xx).

    ``detail``: the vendor's own message (already cleaned of secrets), shown in parentheses.
    ``quota``: the station knows this 429 means the plan's quota is used up (not a rate window).
    A 429's wait comes from ``Retry-After`` or the vendor's reset headers.
    """
    kind = classify_status(status)
    if kind == "ok":
        return None
    where = f"{vendor} answered HTTP {status}" + (f" ({detail})" if detail else "")
    if kind == "auth":
        return AuthError(f"{where}: {auth_hint}" if auth_hint else where)
    if kind == "exhausted" or (kind == "throttled" and quota):
        return QuotaExhaustedError(f"{where}: the account's quota or balance is used up")
    if kind == "throttled":
        return ThrottledError(where, retry_after=retry_after_from_headers(headers))
    if kind == "not_found":
        return NotFoundError(where)
    if kind == "timeout":
        return VendorTimeout(where)
    if kind == "bad_request":
        return BadRequestError(where)
    if kind == "redirect":
        return RedirectRefused(f"{where}: a redirect the station does not follow")
    return ServerError(where, status=status)


def path_segment(value: object) -> str:
    """``value`` quoted as one URL path segment: ``/``, ``?``, ``#``, ``%`` and the dot segments
    ``.`` / ``..`` are escaped, so a lead's value can never change the path it is put in."""
    text = quote(str(value), safe="+@:,;=")
    if text in (".", ".."):
        text = text.replace(".", "%2E")
    return text


# --------------------------------------------------------------------------- capped reads


def _decoder(encoding: str) -> Any:
    enc = encoding.strip().lower()
    if enc in ("", "identity"):
        return None
    if enc in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if enc == "deflate":
        return _Deflate()
    raise BadResponse(f"the body is encoded as {encoding!r}, which the station did not ask for")


class _Deflate:
    """``deflate`` is zlib-wrapped by the RFC, raw in practice: decide on the first bytes."""

    def __init__(self) -> None:
        self._obj: Any = None
        self.unconsumed_tail = b""
        self.eof = False

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._obj is None:
            zlib_wrapped = len(data) >= 2 and (data[0] & 0x0F) == 8 and ((data[0] << 8) | data[1]) % 31 == 0
            self._obj = zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
        out: bytes = self._obj.decompress(data, max_length)
        self.unconsumed_tail = self._obj.unconsumed_tail
        self.eof = self._obj.eof
        return out


async def read_capped(response: httpx.Response, max_bytes: int, *, what: str = "the vendor") -> bytes:
    """The body of a streamed ``response``, decoded, reading at most ``max_bytes`` from the wire
    and producing at most ``max_bytes`` decoded; :class:`ResponseTooLarge` beyond either.

    The response must come from ``client.send(request, stream=True)``; gzip and deflate are
    decoded here with a bound on each step's output, so a gzip bomb costs at most ``max_bytes``.
    A ``Content-Length`` above the cap is refused before reading. A body cut short is
    :class:`BadResponse`.
    """
    import httpx

    declared = response.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(f"{what} answered a body of {int(declared):,} bytes, more than the "
                               f"{max_bytes:,}-byte cap (max_response_bytes)")
    encodings = [e for e in response.headers.get("content-encoding", "").split(",") if e.strip()]
    if len(encodings) > 1:
        raise BadResponse(f"{what} answered a body encoded {len(encodings)} times")
    decoder = _decoder(encodings[0]) if encodings else None
    out = bytearray()
    wire = 0

    def too_large(kind: str) -> ResponseTooLarge:
        return ResponseTooLarge(f"{what} answered a body larger than the {max_bytes:,}-byte cap "
                                f"(max_response_bytes; {kind}): not read further")

    try:
        async for chunk in response.aiter_raw():
            wire += len(chunk)
            if wire > max_bytes:
                raise too_large("on the wire")
            if decoder is None:
                out += chunk
                continue
            data = chunk
            while data:
                try:
                    piece = decoder.decompress(data, max_bytes - len(out) + 1)
                except zlib.error:
                    raise BadResponse(f"{what} answered a body that is not valid {encodings[0]}") from None
                out += piece
                if len(out) > max_bytes:
                    raise too_large("decoded")
                data = decoder.unconsumed_tail
                if not piece and data:  # pragma: no cover - zlib always makes progress
                    break
    except httpx.TimeoutException:
        raise VendorTimeout(f"{what} stopped sending the body in time") from None
    except httpx.TransportError as exc:
        raise BadResponse(f"{what} answered a truncated body ({type(exc).__name__})") from None
    finally:
        await response.aclose()
    if decoder is not None and not getattr(decoder, "eof", True) and wire:
        raise BadResponse(f"{what} answered a truncated {encodings[0]} body")
    return bytes(out)


# --------------------------------------------------------------------------- responses


@dataclass(frozen=True)
class VendorResponse:
    """A vendor's answer, read whole (capped): status, headers, the final URL and the body."""

    status: int
    headers: httpx.Headers
    url: str
    body: bytes
    vendor: str
    reason: str = ""

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    @property
    def category(self) -> str:
        """:func:`classify_status` of the status."""
        return classify_status(self.status)

    @property
    def content_type(self) -> str:
        """The media type, lower-case, without parameters."""
        return str(self.headers.get("content-type", "")).split(";")[0].strip().lower()

    def text(self) -> str:
        """The body as text (the declared charset, else UTF-8; undecodable bytes replaced)."""
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip('"')
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")

    def retry_after(self) -> float | None:
        """Seconds the vendor asked to wait (``Retry-After`` or its reset headers)."""
        return retry_after_from_headers(self.headers)

    def json(self) -> Any:
        """The body as JSON; :class:`BadResponse` when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            raise BadResponse(f"{self.vendor} answered HTTP {self.status} with a body that is not JSON "
                              f"({len(self.body):,} bytes)") from None

    def model(self, model: type[M]) -> M:
        """The body parsed as ``model`` (pydantic); :class:`BadResponse` with the first problems
        when it is not JSON or not of that shape."""
        data = self.json()
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
                                 for e in exc.errors()[:3])
            raise BadResponse(f"{self.vendor} answered HTTP {self.status} with an unexpected body "
                              f"({model.__name__}: {problems})") from None

    async def parse(self, model: type[M]) -> M:
        """:meth:`model`, in a worker thread when the body is large (the event loop stays free)."""
        if len(self.body) > OFFLOAD_BYTES:
            return await asyncio.to_thread(self.model, model)
        return self.model(model)

    def error(self, *, detail: str = "", auth_hint: str = "", quota: bool = False) -> StepError | None:
        """The step error this answer means (see :func:`error_for_status`), ``None`` for 2xx."""
        return error_for_status(self.status, self.headers, vendor=self.vendor, detail=detail,
                                auth_hint=auth_hint, quota=quota)

    def raise_for_status(self, *, detail: str = "", auth_hint: str = "", quota: bool = False) -> None:
        """Raise the step error this answer means; nothing for 2xx."""
        err = self.error(detail=detail, auth_hint=auth_hint, quota=quota)
        if err is not None:
            raise err


# --------------------------------------------------------------------------- shared clients


@dataclass
class _Pooled:
    client: httpx.AsyncClient
    users: int = 0


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], _Pooled]] = \
    weakref.WeakKeyDictionary()


def _new_client(timeout: float, max_connections: int) -> httpx.AsyncClient:
    import httpx

    # verify is httpx's default (True) and never switched off: the station has no such setting
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        follow_redirects=False,
        headers={"Accept-Encoding": "gzip, deflate"},
    )


@contextlib.asynccontextmanager
async def shared_client(station: str, *, timeout: float = 15.0, max_connections: int = 20
                        ) -> Any:
    """``async with shared_client("AcmeStation") as client``: the process-wide pooled
    ``httpx.AsyncClient`` of a station in the running event loop, closed when its last user
    leaves. :class:`VendorClient` uses it; use it directly only for a client of your own making."""
    key = (station, float(timeout), int(max_connections))
    pooled = _acquire(key)
    try:
        yield pooled.client
    finally:
        await _release(key, pooled)


def _acquire(key: tuple[Any, ...]) -> _Pooled:
    loop = asyncio.get_running_loop()
    pools = _POOLS.setdefault(loop, {})
    pooled = pools.get(key)
    if pooled is None or pooled.client.is_closed:
        pooled = pools[key] = _Pooled(_new_client(key[1], key[2]))
    pooled.users += 1
    return pooled


async def _release(key: tuple[Any, ...], pooled: _Pooled) -> None:
    pooled.users -= 1
    if pooled.users > 0:
        return
    with contextlib.suppress(RuntimeError):
        pools = _POOLS.get(asyncio.get_running_loop(), {})
        if pools.get(key) is pooled:
            del pools[key]
    await pooled.client.aclose()


def open_clients() -> int:
    """How many pooled clients are open in the running event loop (for tests and metrics)."""
    return sum(1 for p in _POOLS.get(asyncio.get_running_loop(), {}).values() if not p.client.is_closed)


# --------------------------------------------------------------------------- the client


class VendorClient:
    """One station's access to its vendor: the shared pooled client, credentials attached only
    where :class:`HostPolicy` permits, capped bodies, same-host redirects, mapped errors.

    ``base_url``: the vendor's API root (a setting, so tests point it at 127.0.0.1); relative
    paths are joined to it. ``hosts``: the vendor's declared hosts (the station's
    ``vendor_hosts``). ``allow_hosts``: a route's explicit override. Call :meth:`open` in the
    station's ``open()`` and :meth:`aclose` in its ``close()``.
    """

    def __init__(self, station: str, base_url: str, *, vendor: str | None = None, hosts: Iterable[str] = (),
                 credentials: Credentials | None = None, allow_hosts: Iterable[str] = (),
                 max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = 15.0, max_connections: int = 20,
                 headers: Mapping[str, str] | None = None, follow_redirects: bool = False) -> None:
        self.station = station
        self.vendor = vendor or station
        self.base_url = base_url.rstrip("/") + "/"
        self.policy = HostPolicy(tuple(h.lower() for h in hosts), tuple(_host_entry(h) for h in allow_hosts))
        self.credentials = credentials
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_connections = max_connections
        self.headers = dict(headers or {})
        self.follow_redirects = follow_redirects
        self._key = (station, float(timeout), int(max_connections))
        self._pooled: _Pooled | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle

    async def open(self) -> None:
        """Take the station's shared client; log the route's credential override, if any."""
        if self._pooled is not None and self._loop is asyncio.get_running_loop():
            return
        if self.credentials is not None and self.policy.overridden(self.base_url):
            log.warning("%s: the route allows its key to be sent to %s (allow_hosts), which is not one of "
                        "its vendor hosts (%s)", self.station, _origin(self.base_url),
                        ", ".join(self.policy.hosts) or "none declared")
        self._pooled = _acquire(self._key)
        self._loop = asyncio.get_running_loop()

    async def aclose(self) -> None:
        """Give the shared client back (closed when no station of this name uses it)."""
        pooled, self._pooled = self._pooled, None
        if pooled is not None and self._loop is asyncio.get_running_loop():
            await _release(self._key, pooled)

    @property
    def client(self) -> httpx.AsyncClient:
        """The pooled ``httpx.AsyncClient`` (after :meth:`open`)."""
        if self._pooled is None:
            raise RuntimeError(f"{self.station}: VendorClient.open() was not called")
        return self._pooled.client

    def check_credentials(self) -> None:
        """Raise :class:`CredentialRefused` when ``base_url`` may not receive the key (call it
        before the first request, e.g. in ``process`` when a key is configured)."""
        if self.credentials is not None and self.credentials.present and not self.policy.permits(self.base_url):
            raise CredentialRefused(_refusal(self.station, self.base_url, self.policy))

    # -- requests

    def url(self, path: str) -> str:
        """``path`` joined to the base URL (an absolute URL is kept as it is)."""
        return path if "://" in path else self.base_url + path.lstrip("/")

    async def get(self, path: str, *, params: Mapping[str, Any] | None = None,
                  headers: Mapping[str, str] | None = None) -> VendorResponse:
        """``GET`` (see :meth:`request`)."""
        return await self.request("GET", path, params=params, headers=headers)

    async def post(self, path: str, *, json: Any = None, data: Mapping[str, Any] | None = None,
                   params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None
                   ) -> VendorResponse:
        """``POST`` (see :meth:`request`)."""
        return await self.request("POST", path, params=params, headers=headers, json=json, data=data)

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      headers: Mapping[str, str] | None = None, json: Any = None,
                      data: Mapping[str, Any] | None = None) -> VendorResponse:
        """One request (redirects to the same host followed when asked), its body read capped.

        Transport failures raise :class:`~waystation.errors.VendorTimeout` /
        :class:`~waystation.errors.TransientError`; any status is returned (check it with
        :meth:`VendorResponse.raise_for_status`).
        """
        import httpx

        if self._pooled is None or self._loop is not asyncio.get_running_loop():
            await self.open()
        url = self.url(path)
        send_headers = {**self.headers, **(headers or {})}
        query = dict(params or {})
        for hop in range(MAX_REDIRECTS + 1):
            req_headers = dict(send_headers)
            req_params = dict(query)
            if self.credentials is not None and self.credentials.present:
                if not self.policy.permits(url):
                    raise CredentialRefused(_refusal(self.station, url, self.policy))
                req_headers.update(self.credentials.header_values())
                req_params.update(self.credentials.param_values())
            request = self.client.build_request(method, url, params=req_params or None, headers=req_headers,
                                                json=json, data=data)
            try:
                response = await self.client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise VendorTimeout(f"{self.vendor} did not answer in time ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                raise TransientError(f"{self.vendor}: connection failed ({type(exc).__name__})") from None
            status = response.status_code
            if self.follow_redirects and status in (301, 302, 303, 307, 308) and "location" in response.headers:
                await response.aclose()
                target = urljoin(str(response.url), response.headers["location"])
                if not _same_host(url, target):
                    raise RedirectRefused(f"{self.vendor} redirected to another host "
                                          f"({_origin(target)}): not followed")
                if hop == MAX_REDIRECTS:
                    break
                url, query = target, {}
                if status == 303 or (status in (301, 302) and method == "POST"):
                    method, json, data = "GET", None, None
                continue
            body = await read_capped(response, self.max_bytes, what=self.vendor)
            return VendorResponse(status, response.headers, str(response.url.copy_with(query=None)), body,
                                  self.vendor, response.reason_phrase)
        raise RedirectRefused(f"{self.vendor} redirected more than {MAX_REDIRECTS} times: not followed")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _same_host(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    if (pa.hostname or "").lower() != (pb.hostname or "").lower() or pb.scheme not in ("http", "https"):
        return False
    # the same host; an http -> https upgrade is fine, a downgrade is not
    return not (pa.scheme == "https" and pb.scheme == "http")


def _refusal(station: str, url: str, policy: HostPolicy) -> str:
    return (f"{station} sends its key only over https to {', '.join(policy.hosts) or 'its vendor'}; "
            f"{_origin(url)} is not one of them, so nothing was sent. For a proxy or a test server, "
            f"allow it explicitly in the step's settings: allow_hosts: [{urlsplit(url).hostname}]")
