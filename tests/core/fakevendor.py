"""A toy paid vendor for the batch tests, usable from a ``waystation run`` subprocess.

- :class:`FakeVendor`: a real HTTP server on 127.0.0.1 (a thread) that sells two lookups and
  counts every call it answers, per lead: ``POST /lookup`` (a phone, $0.01) and ``POST /trace``
  (an e-mail, $0.02), plus a *free* status endpoint ``GET /status/lookup/<lead>`` that tells whether
  it already answered a lookup for a lead, and what.
- Stations calling it: ``FakePhoneLookup`` (``in_doubt: recheck``: asks the free status
  endpoint; if the vendor never got the lost call, makes it now), ``FakeSkipTrace``
  (``in_doubt: repay``), and ``Noop`` (free, adds nothing) for the memory test.
- Kill switches for crash tests, from the environment of the process running the batch:
  ``FAKEVENDOR_KILL=<point>:<station>:<n>`` sends SIGKILL to the process itself at the n-th
  occurrence (in this process) of ``before_call`` (the before-step hook: before the intent is
  recorded and before any call), ``after_answer`` (the vendor answered; the result is not yet
  checkpointed) or ``after_checkpoint`` (the after-step hook: the step is checkpointed).

Loaded into ``waystation`` through ``WAYSTATION_EXTRA_PLUGINS=fakevendor`` with this directory on
``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from waystation import Outcome, RetryPolicy, Station, StationSettings, StepContext, hookimpl
from waystation.plan import PlannedStep
from waystation.result import RunContext

WAYSTATION_API = ">=1,<2"
PRICES = {"lookup": 0.01, "trace": 0.02}
#: The command line of ``waystation`` in a subprocess.
WAYSTATION = [sys.executable, "-m", "waystation"]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a ``waystation`` subprocess: only this module as a plugin (no installed
    plugin is loaded), no kill switch unless ``extra`` sets one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKEVENDOR_", "WAYSTATION_"))}
    # the test's own suppression ledger (set by the pytest plugin) is kept, so a CLI `forget` never
    # writes a ledger into the working directory that later tests' runs would read
    for keep in ("WAYSTATION_SUPPRESS_LEDGER", "WAYSTATION_SUPPRESS_SECRET"):
        if keep in os.environ:
            env[keep] = os.environ[keep]
    here = str(Path(__file__).resolve().parent)
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["WAYSTATION_EXTRA_PLUGINS"] = "fakevendor"
    env["WAYSTATION_LOAD_PLUGINS"] = ""
    env["COLUMNS"] = "160"
    env.update(extra)
    return env


def lead_number(lead_id: str) -> int:
    """The number in a test lead id (``L0042`` → 42)."""
    digits = "".join(ch for ch in lead_id if ch.isdigit())
    return int(digits) if digits else 0


def phone_of(lead_id: str) -> str | None:
    """The vendor's answer for a lookup: every fourth lead has no phone."""
    n = lead_number(lead_id)
    return None if n % 4 == 0 else f"+1415555{n % 10000:04d}"


def email_of(lead_id: str) -> str | None:
    """The vendor's answer for a trace: every fifth lead has no e-mail."""
    n = lead_number(lead_id)
    return None if n % 5 == 0 else f"lead{n}@example.com"


# ---------------------------------------------------------------------------- the vendor


class _QuietServer(ThreadingHTTPServer):
    """A client killed mid-request (the point of these tests) is not an error worth a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys as _sys

        if not isinstance(_sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet HTTP/1.1 request handler that answers JSON (the base of the fake vendors' handlers)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def send_json(self, body: dict[str, Any], code: int = 200) -> None:
        """Answer ``body`` as JSON with status ``code``."""
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FakeVendor:
    """The loopback vendor; ``with FakeVendor() as v: v.url``. ``v.calls[kind][lead]`` counts
    answered paid calls; ``v.status_calls`` counts free status checks."""

    def __init__(self) -> None:
        self.calls: dict[str, Counter[str]] = {"lookup": Counter(), "trace": Counter()}
        self.status_calls = 0
        self.delay = 0.0
        #: when each paid call arrived (time.monotonic())
        self.arrivals: list[float] = []
        self.lock = threading.Lock()
        vendor = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                kind = self.path.strip("/")
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if kind not in vendor.calls:
                    self.send_error(404)
                    return
                if len(raw) < length or not raw:  # the client died mid-request: nothing to sell
                    self.send_error(400)
                    return
                lead = str(json.loads(raw)["lead"])
                with vendor.lock:  # billed on receipt, as vendors do
                    vendor.calls[kind][lead] += 1
                    vendor.arrivals.append(time.monotonic())
                if vendor.delay:
                    time.sleep(vendor.delay)
                self.send_json({"phone": phone_of(lead)} if kind == "lookup" else {"email": email_of(lead)})

            def do_GET(self) -> None:
                parts = self.path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "status" or parts[1] not in vendor.calls:
                    self.send_error(404)
                    return
                kind, lead = parts[1], parts[2]
                with vendor.lock:
                    vendor.status_calls += 1
                    answered = vendor.calls[kind][lead] > 0
                result = ({"phone": phone_of(lead)} if kind == "lookup" else {"email": email_of(lead)}) \
                    if answered else None
                self.send_json({"answered": answered, "result": result})

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeVendor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def total(self, kind: str) -> int:
        """Answered paid calls of one kind."""
        with self.lock:
            return sum(self.calls[kind].values())

    def billed(self) -> float:
        """What the vendor would bill: answered calls * price."""
        return sum(self.total(k) * p for k, p in PRICES.items())


# ---------------------------------------------------------------------------- kill switches

_counts: Counter[str] = Counter()


def maybe_kill(point: str, station: str) -> None:
    """SIGKILL this process when ``FAKEVENDOR_KILL`` names this point and station's n-th time."""
    spec = os.environ.get("FAKEVENDOR_KILL", "")
    if not spec:
        return
    want_point, want_station, n = spec.split(":")
    if want_point != point or want_station != station:
        return
    _counts[point] += 1
    if _counts[point] == int(n):
        os.kill(os.getpid(), signal.SIGKILL)


@hookimpl
def before_step(step: PlannedStep, ctx: RunContext) -> None:
    """Kill switch ``before_call``: before the intent is recorded and the vendor is called."""
    maybe_kill("before_call", step.spec.station)


@hookimpl
def after_step(step: PlannedStep, ctx: RunContext) -> None:
    """Kill switch ``after_checkpoint``: the step's result is durable."""
    maybe_kill("after_checkpoint", step.spec.station)


# ---------------------------------------------------------------------------- stations


class VendorSettings(StationSettings):
    """Where the fake vendor listens, and an optional delay per call (seconds)."""

    base_url: str
    delay: float = 0.0


class _VendorStation(Station):
    kind: ClassVar[str] = ""
    Settings = VendorSettings
    retry = RetryPolicy(max_attempts=1)
    timeout = 20.0

    async def open(self) -> None:
        import httpx

        assert isinstance(self.settings, VendorSettings)
        self.client = httpx.AsyncClient(base_url=self.settings.base_url, timeout=15.0)

    async def close(self) -> None:
        await self.client.aclose()

    async def _call(self, ctx: StepContext) -> dict[str, Any]:
        assert isinstance(self.settings, VendorSettings)
        if self.settings.delay:
            import asyncio

            await asyncio.sleep(self.settings.delay)
        resp = await self.client.post(f"/{self.kind}", json={"lead": ctx.lead_id})
        resp.raise_for_status()
        maybe_kill("after_answer", self.name)
        data: dict[str, Any] = resp.json()
        return data


class FakePhoneLookup(_VendorStation):
    """Paid phone lookup ($0.01); in doubt: recheck through the vendor's free status endpoint."""

    name = "FakePhoneLookup"
    kind = "lookup"
    requires = ("name",)
    provides: ClassVar[dict[str, Any]] = {"phone": str}
    cost = PRICES["lookup"]
    in_doubt = "recheck"

    async def process(self, ctx: StepContext) -> Outcome:
        data = await self._call(ctx)
        return Outcome({"phone": data.get("phone")}, cost=self.cost)

    async def recheck(self, ctx: StepContext) -> Outcome | None:
        resp = await self.client.get(f"/status/lookup/{ctx.lead_id}")
        status = resp.json()
        if status["answered"]:
            return Outcome({"phone": status["result"]["phone"]})
        # the lost call never reached the vendor: make it now (the in-doubt charge pays for it)
        return await self.process(ctx)


class FakeSkipTrace(_VendorStation):
    """Paid skip trace ($0.02) that needs the phone; in doubt: pay again."""

    name = "FakeSkipTrace"
    kind = "trace"
    requires = ("phone",)
    provides: ClassVar[dict[str, Any]] = {"email": str}
    cost = PRICES["trace"]
    in_doubt = "repay"

    async def process(self, ctx: StepContext) -> Outcome:
        data = await self._call(ctx)
        return Outcome({"email": data.get("email")}, cost=self.cost)


class NoopSettings(StationSettings):
    """A delay per call (seconds), for interrupt tests."""

    delay: float = 0.0


class Noop(Station):
    """Free, adds nothing (unless ``delay`` > 0, sleeps first)."""

    name = "Noop"
    provides: ClassVar[dict[str, Any]] = {"noop": str}
    Settings = NoopSettings
    timeout = None

    async def process(self, ctx: StepContext) -> Outcome:
        assert isinstance(self.settings, NoopSettings)
        if self.settings.delay:
            import asyncio

            await asyncio.sleep(self.settings.delay)
        return Outcome()


@hookimpl
def register_stations() -> list[type[Station]]:
    """The toy stations."""
    return [FakePhoneLookup, FakeSkipTrace, Noop]


class _NoopOnly:
    """Just the ``Noop`` station, no other hook (``WAYSTATION_EXTRA_PLUGINS=fakevendor:NOOP_ONLY``)."""

    WAYSTATION_API = ">=1,<2"

    @hookimpl
    def register_stations(self) -> list[type[Station]]:
        """The no-op station."""
        return [Noop]


NOOP_ONLY = _NoopOnly()
