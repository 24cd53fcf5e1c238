"""A fake vendor: a real HTTP server on 127.0.0.1 that serves what a test declares and records
every request it receives.

Built on pytest-httpserver (werkzeug), in a thread, so a station talks to it with its real HTTP
client over a real socket::

    def test_lookup(fake_vendor):
        fake_vendor.json("/v2/number_lookup/{phone}", {"data": {"carrier": {"type": "mobile"}}})
        fake_vendor.sequence("/v2/flaky", [Reply.json({}, status=500), Reply.json({"ok": True})])
        fake_vendor.fault("/v2/broken", "reset")
        ...
        assert fake_vendor.count("/v2/number_lookup/{phone}") == 1
        fake_vendor.assert_no_secret("my-api-key")

A path is matched exactly, or as a pattern where ``{name}`` matches one path segment and a
trailing ``*`` matches the rest. A route's replies are served in order; the last one repeats.
Paths nobody declared get a 500 whose body says so (and ``vendor.unmatched`` lists them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import struct
import threading
import time
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, unquote_plus

from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Request, Response

Fault = Literal["reset", "slow_body", "malformed_json", "truncated"]

#: Header names that are allowed to carry a credential (compared lower-case). Any header whose
#: name contains one of :data:`AUTH_HEADER_WORDS` counts as an auth header too.
AUTH_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "apikey",
                          "x-rapidapi-key", "x-auth-token", "x-access-token", "loginid"})
AUTH_HEADER_WORDS = ("auth", "key", "token", "secret", "password")

#: Loggers whose records are not checked for secrets: the fake server's own request log.
_IGNORED_LOGGERS = ("werkzeug", "waystation.testing.fake_vendor")

log = logging.getLogger("waystation.testing.fake_vendor")


def is_auth_header(name: str) -> bool:
    """Whether a header of this name is meant to carry a credential."""
    low = name.lower()
    return low in AUTH_HEADERS or any(w in low for w in AUTH_HEADER_WORDS)


@dataclass(frozen=True)
class Reply:
    """One response of the fake vendor: status, body, headers, and optionally a delay or a fault.

    Build it with :meth:`json`, :meth:`text`, :meth:`reset`, :meth:`slow_body`,
    :meth:`malformed_json` rather than by hand. ``delay`` is slept before the response starts.
    """

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = "application/json"
    delay: float = 0.0
    fault: Fault | None = None
    chunk_delay: float = 0.0

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None,
             delay: float = 0.0) -> Reply:
        """A JSON response (``data`` is serialised with :func:`json.dumps`)."""
        return cls(status, json.dumps(data).encode(), dict(headers or {}), "application/json", delay)

    @classmethod
    def text(cls, text: str | bytes, status: int = 200, headers: Mapping[str, str] | None = None,
             delay: float = 0.0, content_type: str = "text/plain; charset=utf-8") -> Reply:
        """A text (or HTML, with ``content_type="text/html"``) response."""
        body = text.encode() if isinstance(text, str) else text
        return cls(status, body, dict(headers or {}), content_type, delay)

    @classmethod
    def status_only(cls, status: int, headers: Mapping[str, str] | None = None, delay: float = 0.0) -> Reply:
        """An empty response with ``status``."""
        return cls(status, b"", dict(headers or {}), None, delay)

    @classmethod
    def reset(cls, delay: float = 0.0) -> Reply:
        """The connection is dropped without any response (closed with RST)."""
        return cls(delay=delay, fault="reset")

    @classmethod
    def slow_body(cls, data: Any, chunk_delay: float = 0.2, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> Reply:
        """Headers come at once, then the JSON body trickles in one byte-chunk per ``chunk_delay``."""
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        return cls(status, body, dict(headers or {}), "application/json", 0.0, "slow_body", chunk_delay)

    @classmethod
    def malformed_json(cls, status: int = 200, body: bytes = b'{"data": {"phone_number": "+1415', ) -> Reply:
        """A response announced as JSON whose body is not valid JSON."""
        return cls(status, body, {}, "application/json", 0.0, "malformed_json")

    @classmethod
    def truncated(cls, data: Any, status: int = 200) -> Reply:
        """A response whose body stops half-way (announced length longer than what is sent)."""
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        return cls(status, body, {}, "application/json", 0.0, "truncated")


ReplySpec = Reply | Mapping[str, Any] | list[Any] | str | int


def as_reply(spec: ReplySpec) -> Reply:
    """A :class:`Reply` from a shorthand: a Reply, a JSON-able dict/list, a text, or a status."""
    if isinstance(spec, Reply):
        return spec
    if isinstance(spec, bool):
        raise TypeError("a bool is not a reply")
    if isinstance(spec, int):
        return Reply.status_only(spec)
    if isinstance(spec, str):
        return Reply.text(spec)
    return Reply.json(spec)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake vendor received."""

    method: str
    path: str
    query_string: str
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    body: bytes
    at: float

    @property
    def url(self) -> str:
        """Path and query string, as sent."""
        return self.path + (f"?{self.query_string}" if self.query_string else "")

    @property
    def args(self) -> dict[str, str]:
        """Query parameters (the last value of each name)."""
        return dict(self.query)

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        """A header's value (case-insensitive name)."""
        low = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == low), None)

    @classmethod
    def from_werkzeug(cls, request: Request) -> RecordedRequest:
        """Copy what matters out of a werkzeug request."""
        qs = request.query_string.decode("latin-1")
        return cls(request.method, request.path, qs, tuple(parse_qsl(qs, keep_blank_values=True)),
                   {k: v for k, v in request.headers.items()}, request.get_data(), time.time())


def _compile_path(pattern: str) -> re.Pattern[str]:
    out = []
    rest = pattern
    tail = rest.endswith("*")
    if tail:
        rest = rest[:-1]
    for part in re.split(r"(\{[A-Za-z_][A-Za-z0-9_]*\})", rest):
        if part.startswith("{") and part.endswith("}"):
            out.append(f"(?P<{part[1:-1]}>[^/]+)")
        else:
            out.append(re.escape(part))
    return re.compile("^" + "".join(out) + (".*" if tail else "") + "$")


class VendorRoute:
    """The replies declared for one path (and optionally one method and some query values)."""

    def __init__(self, path: str, replies: Sequence[Reply], method: str | None = None,
                 query: Mapping[str, str] | None = None,
                 handler: Callable[[RecordedRequest], Reply] | None = None) -> None:
        if not replies and handler is None:
            raise ValueError(f"no reply given for {path}")
        self.handler = handler
        self.path = path
        self.method = method.upper() if method else None
        self.query = dict(query or {})
        self.replies = list(replies)
        self.served = 0
        self._pattern = _compile_path(path)
        self._lock = threading.Lock()

    def matches(self, req: RecordedRequest) -> bool:
        """Whether ``req`` is for this route."""
        if self.method is not None and req.method != self.method:
            return False
        if not self._pattern.match(req.path) and not self._pattern.match(unquote(req.path)):
            return False
        args = req.args
        return all(args.get(k) == v for k, v in self.query.items())

    def next_reply(self, req: RecordedRequest | None = None) -> Reply:
        """The reply to serve now (in order; the last one repeats; or the handler's answer)."""
        if self.handler is not None:
            assert req is not None
            with self._lock:
                self.served += 1
            return self.handler(req)
        with self._lock:
            i = min(self.served, len(self.replies) - 1)
            self.served += 1
            return self.replies[i]


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_IGNORED_LOGGERS):
            return
        self.records.append(record)


class SecretLeak(AssertionError):
    """A secret was found where it must never be."""


class FakeVendor(HTTPServer):
    """A fake vendor HTTP server on 127.0.0.1 (see the module docstring).

    Use it as a context manager, or through the ``fake_vendor`` pytest fixture (which also
    captures log records so that :meth:`assert_no_secret` can check them).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port, threaded=True)
        self.no_handler_status_code = 500
        self.routes: list[VendorRoute] = []
        self.requests: list[RecordedRequest] = []
        self.unmatched: list[RecordedRequest] = []
        self._req_lock = threading.Lock()
        self._released = threading.Event()
        self._released.set()
        self._hold_timeout = 10.0
        self._capture: _Capture | None = None
        self._extra_logs: list[str] = []
        wz = logging.getLogger("werkzeug")
        if wz.level == logging.NOTSET:
            wz.setLevel(logging.WARNING)  # not one line per request on stderr

    # -- server ---------------------------------------------------------------------------

    def thread_target(self) -> None:
        """Serve with a short poll interval so that stopping is quick."""
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        """Release held requests and stop the server."""
        self._released.set()
        super().stop()

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def url_for(self, suffix: str) -> str:
        """The absolute URL of ``suffix`` on this server."""
        return self.url + ("" if suffix.startswith("/") else "/") + suffix

    # -- declaring replies ------------------------------------------------------------------

    def add(self, path: str, *replies: ReplySpec, method: str | None = None,
            query: Mapping[str, str] | None = None) -> VendorRoute:
        """Declare the replies for ``path`` (in order, the last repeats). Later declarations for
        the same path take precedence over earlier ones."""
        route = VendorRoute(path, [as_reply(r) for r in replies], method, query)
        self.routes.insert(0, route)
        return route

    def handle(self, path: str, handler: Callable[[RecordedRequest], ReplySpec], *,
               method: str | None = None) -> VendorRoute:
        """Answer ``path`` with ``handler(request)`` (runs in the server's thread)."""
        route = VendorRoute(path, [], method, None, lambda req: as_reply(handler(req)))
        self.routes.insert(0, route)
        return route

    def json(self, path: str, data: Any, status: int = 200, *, headers: Mapping[str, str] | None = None,
             delay: float = 0.0, method: str | None = None) -> VendorRoute:
        """Serve ``data`` as JSON on ``path``."""
        return self.add(path, Reply.json(data, status, headers, delay), method=method)

    def text(self, path: str, text: str, status: int = 200, *, headers: Mapping[str, str] | None = None,
             content_type: str = "text/plain; charset=utf-8", delay: float = 0.0,
             method: str | None = None) -> VendorRoute:
        """Serve ``text`` on ``path``."""
        return self.add(path, Reply.text(text, status, headers, delay, content_type), method=method)

    def sequence(self, path: str, replies: Iterable[ReplySpec], *, method: str | None = None) -> VendorRoute:
        """Serve ``replies`` one after the other on ``path`` (e.g. first a 500, then a 200)."""
        return self.add(path, *replies, method=method)

    def fault(self, path: str, fault: Fault, *, method: str | None = None, data: Any = None,
              chunk_delay: float = 0.2) -> VendorRoute:
        """Serve a fault on ``path``: ``reset``, ``slow_body``, ``malformed_json`` or ``truncated``."""
        reply = {
            "reset": lambda: Reply.reset(),
            "slow_body": lambda: Reply.slow_body(data if data is not None else {"ok": True}, chunk_delay),
            "malformed_json": lambda: Reply.malformed_json(),
            "truncated": lambda: Reply.truncated(data if data is not None else {"data": "x" * 64}),
        }[fault]()
        return self.add(path, reply, method=method)

    def declare(self, responses: Mapping[str, ReplySpec | Sequence[ReplySpec]]) -> None:
        """Declare many paths at once: ``{path: reply}`` or ``{path: [reply, reply, ...]}``.

        A key may start with a method: ``"POST /v1/scrub"``. A list value is a sequence of
        replies unless it is meant as a JSON array: wrap that in :meth:`Reply.json`.
        """
        for key, value in responses.items():
            method, _, path = key.partition(" ") if " " in key else ("", "", key)
            if isinstance(value, list | tuple):
                self.add(path, *value, method=method or None)
            else:
                self.add(path, typing.cast(ReplySpec, value), method=method or None)

    def clear_routes(self) -> None:
        """Forget every declared route (the request log is kept)."""
        self.routes.clear()

    @contextlib.contextmanager
    def hold(self, timeout: float = 10.0) -> Iterator[None]:
        """Hold every response until the block ends (at most ``timeout`` s): to catch a station
        mid-call, e.g. to cancel it."""
        self._released.clear()
        self._hold_timeout = timeout
        try:
            yield
        finally:
            self._released.set()

    # -- serving ----------------------------------------------------------------------------

    def application(self, request: Request) -> Response:
        """Record the request and answer it from the declared routes."""
        request.get_data()
        rec = RecordedRequest.from_werkzeug(request)
        with self._req_lock:
            self.requests.append(rec)
        route = next((r for r in self.routes if r.matches(rec)), None)
        if route is None:
            if self.handlers or self.oneshot_handlers or self.ordered_handlers:
                response = self.dispatch(request)
            else:
                with self._req_lock:
                    self.unmatched.append(rec)
                response = Response(f"fake vendor: nothing declared for {rec.method} {rec.path}", 500,
                                    content_type="text/plain")
        else:
            try:
                reply = route.next_reply(rec)
            except Exception as exc:
                self.handler_errors.append(exc)
                reply = Reply.text(f"fake vendor: handler for {route.path} raised {type(exc).__name__}: {exc}",
                                   500)
            response = self._render(reply, request)
        self.log.append((request, response))
        return response

    def _render(self, reply: Reply, request: Request) -> Response:
        if not self._released.is_set():
            self._released.wait(self._hold_timeout)
        if reply.delay:
            time.sleep(reply.delay)
        headers = dict(reply.headers)
        content_type = reply.content_type
        for name in [h for h in headers if h.lower() == "content-type"]:
            content_type = headers.pop(name)  # a declared Content-Type header wins
        if reply.fault == "reset":
            _drop(request)
            raise ConnectionResetError("fake vendor: reset")
        if reply.fault == "slow_body":
            body, pause = reply.body, reply.chunk_delay

            def trickle() -> Iterator[bytes]:
                for i in range(0, len(body), 8):
                    time.sleep(pause)
                    yield body[i:i + 8]

            headers["Content-Length"] = str(len(body))
            return Response(trickle(), reply.status, headers=headers, content_type=content_type,
                            direct_passthrough=True)
        if reply.fault == "truncated":
            half = reply.body[: max(1, len(reply.body) // 2)]

            def cut() -> Iterator[bytes]:
                yield half
                _drop(request)
                raise ConnectionResetError("fake vendor: truncated")

            headers["Content-Length"] = str(len(reply.body))
            return Response(cut(), reply.status, headers=headers, content_type=content_type,
                            direct_passthrough=True)
        return Response(reply.body, reply.status, headers=headers, content_type=content_type)

    # -- inspecting -------------------------------------------------------------------------

    def calls(self, path: str | None = None, method: str | None = None) -> list[RecordedRequest]:
        """The requests received (for ``path``: exact or pattern as in :meth:`add`)."""
        with self._req_lock:
            reqs = list(self.requests)
        if path is None and method is None:
            return reqs
        probe = VendorRoute(path or "*", [Reply()], method)
        return [r for r in reqs if probe.matches(r)]

    def count(self, path: str | None = None, method: str | None = None) -> int:
        """How many requests were received (for ``path`` / ``method``)."""
        return len(self.calls(path, method))

    def counts(self) -> dict[str, int]:
        """Requests per ``"METHOD /path"``."""
        out: dict[str, int] = {}
        for r in self.calls():
            key = f"{r.method} {r.path}"
            out[key] = out.get(key, 0) + 1
        return out

    def reset_log(self) -> None:
        """Forget the requests received so far (routes stay)."""
        with self._req_lock:
            self.requests.clear()
            self.unmatched.clear()
        self.log.clear()
        for r in self.routes:
            r.served = 0

    def assert_called(self, path: str, times: int | None = None, method: str | None = None) -> None:
        """Assert ``path`` was requested (exactly ``times`` times when given)."""
        n = self.count(path, method)
        if (times is None and n == 0) or (times is not None and n != times):
            want = "at least once" if times is None else f"{times} time(s)"
            raise AssertionError(f"expected {method or 'any method'} {path} {want}, got {n}; "
                                 f"received: {self.counts() or 'nothing'}")

    # -- logs and secrets -------------------------------------------------------------------

    @contextlib.contextmanager
    def capture_logs(self) -> Iterator[list[logging.LogRecord]]:
        """Capture every log record (any logger, from DEBUG up) while the block runs."""
        cap = _Capture()
        root = logging.getLogger()
        old_level = root.level
        root.addHandler(cap)
        root.setLevel(logging.DEBUG)
        previous, self._capture = self._capture, cap
        try:
            yield cap.records
        finally:
            root.removeHandler(cap)
            root.setLevel(old_level)
            self._capture = previous
            self._extra_logs.extend(_format(r) for r in cap.records)

    @property
    def log_texts(self) -> list[str]:
        """The captured log lines so far (formatted, with exception tracebacks)."""
        current = [_format(r) for r in self._capture.records] if self._capture else []
        return [*self._extra_logs, *current]

    def secret_leaks(self, secret: str, *, allow_in: Iterable[str] = (),
                     logs: Iterable[str] = ()) -> list[str]:
        """Where ``secret`` appears: URL path, query, body, a non-auth header, or a log line.

        ``allow_in`` may name places the vendor's API really requires it (``"query"``, ``"body"``);
        auth headers (``Authorization``, ``X-Api-Key`` ...) are always allowed.
        """
        if not secret:
            return []
        allowed = set(allow_in)
        variants = {secret}
        found: list[str] = []
        for r in self.calls():
            where = f"{r.method} {r.path.replace(secret, '***')}"
            if any(v in r.path or v in unquote(r.path) for v in variants):
                found.append(f"{where}: in the URL path")
            if "query" not in allowed and (secret in r.query_string or secret in unquote_plus(r.query_string)
                                           or any(secret in v for _, v in r.query)):
                found.append(f"{where}: in the query string")
            if "body" not in allowed and r.body:
                text = r.text
                if secret in text or secret in unquote_plus(text):
                    found.append(f"{where}: in the request body")
            for name, value in r.headers.items():
                if not is_auth_header(name) and secret in value:
                    found.append(f"{where}: in header {name!r}")
        for line in [*self.log_texts, *logs]:
            if secret in line:
                found.append(f"in a log line: {line.replace(secret, '***')[:200]!r}")
        return found

    def assert_no_secret(self, secret: str | Any, *, allow_in: Iterable[str] = (),
                         logs: Iterable[str] = ()) -> None:
        """Fail when ``secret`` (a str or a SecretStr) leaked into a URL, query, body, non-auth
        header, or a captured log line (see :meth:`secret_leaks`)."""
        plain = secret.get_secret_value() if hasattr(secret, "get_secret_value") else str(secret)
        leaks = self.secret_leaks(plain, allow_in=allow_in, logs=logs)
        if leaks:
            raise SecretLeak("secret leaked:\n  " + "\n  ".join(leaks))


def _drop(request: Request) -> None:
    """Close the request's connection abruptly (RST) so the client sees no (complete) answer."""
    sock = request.environ.get("werkzeug.socket")
    if sock is None:  # pragma: no cover - werkzeug always sets it
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)


def _format(record: logging.LogRecord) -> str:
    try:
        text = f"{record.name} {record.levelname} {record.getMessage()}"
    except Exception:  # pragma: no cover - a broken log call
        text = f"{record.name} {record.levelname} {record.msg!r} {record.args!r}"
    if record.exc_info and record.exc_info[1] is not None:
        text += f" {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
    return text
