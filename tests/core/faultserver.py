"""A vendor that fails on command, and a toy httpx station that talks to it (resilience tests).

:class:`FaultServer` is a small HTTP/1.1 server on 127.0.0.1 (asyncio, in its own thread, so it
keeps answering whatever the test's event loop is doing). Per path it serves a queue of scripted
replies, then a default reply; every request is recorded with its arrival time. Faults: any
status (500, 503, 402, 404, 429 with ``Retry-After``), a slow response, a connection reset, a
malformed JSON body, an empty body.

:func:`vendor` builds a station class that calls one path with httpx and maps the answers to the
core's error classes, the way a vendor plugin does.

Run as a script (``python faultserver.py worker SPEC_JSON``) it is a worker process for the
multi-process Redis tests: it runs leads through a route and prints a JSON summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from waystation import Outcome, Station, StationSettings, StepContext
from waystation.errors import (
    AuthError,
    PermanentError,
    QuotaExhaustedError,
    ServerError,
    ThrottledError,
    TransientError,
    VendorTimeout,
)
from waystation.resilience.policies import parse_retry_after

# ------------------------------------------------------------------------------------ replies


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``kind``: ``http`` (status/body/headers after ``delay``) or ``reset``."""

    status: int = 200
    body: bytes = b'{"line_type": "mobile"}'
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    kind: str = "http"


def ok(data: dict[str, Any] | None = None, delay: float = 0.0) -> Reply:
    """200 with a JSON body."""
    return Reply(200, json.dumps(data if data is not None else {"line_type": "mobile"}).encode(), delay=delay)


def status(code: int, retry_after: str | None = None, delay: float = 0.0) -> Reply:
    """An error status with a small JSON body (and a ``Retry-After`` header when given)."""
    headers = (("Retry-After", retry_after),) if retry_after is not None else ()
    return Reply(code, json.dumps({"error": f"status {code}"}).encode(), headers, delay)


def slow(seconds: float) -> Reply:
    """A good answer that starts only after ``seconds``."""
    return ok(delay=seconds)


def reset() -> Reply:
    """The connection is reset (TCP RST) instead of an answer."""
    return Reply(kind="reset")


def malformed() -> Reply:
    """200 with a body that is not JSON."""
    return Reply(200, b'{"line_type": "mobi')


def empty() -> Reply:
    """200 with an empty body."""
    return Reply(200, b"")


FAULTS: dict[str, Reply] = {
    "500": status(500),
    "503": status(503),
    "429": status(429, retry_after="7"),
    "slow": slow(5.0),
    "reset": reset(),
    "malformed": malformed(),
    "empty": empty(),
}


@dataclass
class Hit:
    """One request the server received: path and arrival time (``time.time()``)."""

    path: str
    at: float


@dataclass
class _Route:
    queue: deque[Reply] = field(default_factory=deque)
    default: Reply = field(default_factory=ok)


class FaultServer:
    """The scripted vendor. ``with FaultServer() as srv: srv.script("/a", status(500), ok())``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, _Route] = {}
        self.hits: list[Hit] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self.active = 0
        self.max_active = 0

    # -- commands (from the test's thread) --------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def script(self, path: str, *replies: Reply) -> None:
        """Serve ``replies`` in order on ``path`` (then its default)."""
        with self._lock:
            self._routes.setdefault(path, _Route()).queue.extend(replies)

    def default(self, path: str, reply: Reply) -> None:
        """What ``path`` answers once its script is used up."""
        with self._lock:
            self._routes.setdefault(path, _Route()).default = reply

    def count(self, path: str) -> int:
        """How many requests ``path`` received."""
        with self._lock:
            return sum(1 for h in self.hits if h.path == path)

    def times(self, path: str) -> list[float]:
        """Arrival times of the requests on ``path``."""
        with self._lock:
            return [h.at for h in self.hits if h.path == path]

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> FaultServer:
        started = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024))
            self.port = self._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="faultserver", daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    # -- serving (in the server's thread) ----------------------------------------------------

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _next(self, path: str) -> Reply:
        with self._lock:
            self.hits.append(Hit(path, time.time()))
            route = self._routes.setdefault(path, _Route())
            return route.queue.popleft() if route.queue else route.default

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                target = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
                path = target.split("?", 1)[0]
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                if length:
                    await reader.readexactly(length)
                reply = self._next(path)
                self.active += 1
                self.max_active = max(self.max_active, self.active)
                try:
                    if reply.delay:
                        await asyncio.sleep(reply.delay)
                    if reply.kind == "reset":
                        sock = writer.get_extra_info("socket")
                        if sock is not None:
                            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        writer.transport.abort()
                        return
                    reason = {200: "OK", 402: "Payment Required", 404: "Not Found", 429: "Too Many Requests",
                              500: "Internal Server Error", 503: "Service Unavailable"}.get(reply.status, "X")
                    out = [f"HTTP/1.1 {reply.status} {reason}", f"Content-Length: {len(reply.body)}",
                           "Content-Type: application/json"]
                    out += [f"{k}: {v}" for k, v in reply.headers]
                    writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + reply.body)
                    await writer.drain()
                finally:
                    self.active -= 1
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()


# ------------------------------------------------------------------------------------ station


class VendorSettings(StationSettings):
    """Where the toy vendor lives."""

    base_url: str = "http://127.0.0.1:1"
    path: str = "/lookup"


class ToyVendor(Station):
    """Looks up a phone's line type at the fault server, mapping answers to the core's errors."""

    name = "ToyVendor"
    requires = ("phone",)
    provides: ClassVar[dict[str, Any]] = {"line_type": str}
    cost = 0.01
    timeout = 10.0
    Settings = VendorSettings

    async def open(self) -> None:
        import httpx

        s: VendorSettings = self.settings  # type: ignore[assignment]
        # few keep-alive connections: httpcore's pool gets slow with hundreds of idle ones
        self.client = httpx.AsyncClient(
            base_url=s.base_url, timeout=httpx.Timeout(10.0, pool=None),
            limits=httpx.Limits(max_connections=500, max_keepalive_connections=20))

    async def close(self) -> None:
        await self.client.aclose()

    async def process(self, ctx: StepContext) -> Outcome:
        s: VendorSettings = self.settings  # type: ignore[assignment]
        resp = await self.client.get(s.path, params={"phone": ctx.get("phone")})
        code = resp.status_code
        if code == 402:
            raise QuotaExhaustedError("vendor: out of credits (402)")
        if code == 429:
            if resp.headers.get("x-ratelimit-requests-remaining") == "0":
                raise QuotaExhaustedError("vendor: monthly quota used up (429)")
            raise ThrottledError("vendor: throttled (429)", parse_retry_after(resp.headers.get("retry-after")))
        if code == 408:
            raise VendorTimeout("vendor: request timeout (408)")
        if code >= 500:
            raise ServerError(f"vendor: server error ({code})", status=code)
        if code in (401, 403):
            raise AuthError(f"vendor: credentials refused ({code})")
        if code >= 400:
            raise PermanentError(f"vendor: request refused ({code})")
        if not resp.content:
            raise TransientError("vendor: empty body")
        try:
            data = resp.json()
        except ValueError:
            raise TransientError("vendor: malformed JSON") from None
        return Outcome({"line_type": data.get("line_type")}, cost=self.cost)


def vendor(name: str) -> type[Station]:
    """A :class:`ToyVendor` under another station name (one per waterfall tier)."""
    return type(name, (ToyVendor,), {"name": name, "__doc__": f"Toy vendor {name}."})


# ------------------------------------------------------------------------------------ worker


async def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    from waystation import Engine, hookimpl

    changes: list[list[Any]] = []

    class Watch:
        @hookimpl
        def on_breaker_change(self, station: str, old: str, new: str, cause: str | None) -> None:
            changes.append([station, old, new, cause, time.time()])

    stations = [vendor(n) for n in spec["stations"]]
    engine = Engine.from_text(spec["route"], stations, plugins=[Watch()], redis_url=spec["redis_url"],
                              redis_prefix=spec["prefix"])
    # handshake: say "ready" once imports and set-up are done, then wait for the start time the test
    # sends on stdin, so that slow process start-up on a loaded machine never shifts the schedule
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    start_at = float((await asyncio.to_thread(sys.stdin.readline)).strip() or 0)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    async with engine:
        results = await asyncio.gather(*(engine.run({"id": f"{spec['tag']}-{i}", "phone": f"+1415555{i:04d}"})
                                         for i in range(spec["leads"])))
    steps: dict[str, dict[str, int]] = {}
    for r in results:
        for sid, rec in r.steps.items():
            key = rec.status + (f":{rec.reason}" if rec.reason else "") + \
                (f":{rec.error_category}" if rec.error_category else "")
            steps.setdefault(sid, {}).setdefault(key, 0)
            steps[sid][key] += 1
    return {"steps": steps, "changes": changes,
            "filled": sum(1 for r in results if r.data.get("line_type"))}


def main(argv: list[str]) -> None:
    """``python faultserver.py worker SPEC_JSON``: run leads, print a JSON summary."""
    if len(argv) != 3 or argv[1] != "worker":
        raise SystemExit("usage: faultserver.py worker SPEC_JSON")
    spec = json.loads(argv[2])
    out = asyncio.run(_worker(spec))
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main(sys.argv)
