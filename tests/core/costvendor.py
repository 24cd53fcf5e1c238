"""Fake paid vendors for the cost tests (history, estimate, cache): a real HTTP server on 127.0.0.1.

``PricedVendor(products)`` sells one lookup per product at ``POST /<product>`` (body
``{"lead": id}``), answering ``{"phone": ... | null, "cost": price}``. Whether a lead is a hit is
set by the test: product ``rate`` r means lead number n is a hit iff ``frac(n * a + b) < r`` — a
Weyl sequence (``a`` irrational, one per product), so every run of consecutive lead numbers has
very nearly the fraction r of hits, and two products are uncorrelated. ``price_hit`` /
``price_miss`` are what a call costs. ``faults[product][lead] = "500" | "slow"`` makes that lead's
next call to that product fail, once (HTTP 500 / answer after ``slow_seconds``). ``calls[product]``
counts every answered call per lead.

Stations ``VendorA`` / ``VendorB`` (paid, ``requires: name``, ``provides: phone``) call it; the
vendor's URL comes from ``COSTVENDOR_URL``. ``Shout`` is a free station (``provides: shout``).
``StableMissVendor`` is ``VendorB`` declaring its misses stable (``cache_misses = True``).
Loaded into a ``waystation`` subprocess with ``WAYSTATION_EXTRA_PLUGINS=costvendor``.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from typing import ClassVar

from fakevendor import JsonHandler
from fakevendor import _QuietServer as QuietServer
from pydantic_settings import SettingsConfigDict
from waystation import Outcome, RetryPolicy, Station, StationSettings, StepContext, hookimpl
from waystation.errors import ServerError

WAYSTATION_API = ">=1,<2"
_MULT = {"a": (math.sqrt(5) - 1) / 2, "b": math.sqrt(2) - 1}


def lead_number(lead: str) -> int:
    digits = "".join(ch for ch in lead if ch.isdigit())
    return int(digits) if digits else 0


class _QuietServer(QuietServer):
    request_queue_size = 256  # many leads in flight: no connection refused by a short backlog


class PricedVendor:
    """The loopback vendor (see the module docstring); ``with PricedVendor({...}) as v: v.url``."""

    def __init__(self, products: dict[str, dict[str, float]], slow_seconds: float = 2.0) -> None:
        self.products = products
        self.calls: dict[str, Counter[str]] = {p: Counter() for p in products}
        self.faults: dict[str, dict[str, str]] = {p: {} for p in products}
        self.slow_seconds = slow_seconds
        self.delay = 0.0  # seconds every answer takes
        self.lock = threading.Lock()
        vendor = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                product = self.path.strip("/")
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if product not in vendor.products:
                    self.send_json(code=404, body={"error": "no such product"})
                    return
                if not raw:  # the client gave up before sending the body: nothing to sell
                    self.send_json(code=400, body={"error": "empty body"})
                    return
                lead = str(json.loads(raw)["lead"])
                with vendor.lock:
                    vendor.calls[product][lead] += 1
                    fault = vendor.faults[product].pop(lead, None)  # once
                if fault == "500":
                    self.send_json(code=500, body={"error": "internal"})
                    return
                if fault == "slow":
                    time.sleep(vendor.slow_seconds)
                if vendor.delay:
                    time.sleep(vendor.delay)
                hit = vendor.is_hit(product, lead)
                p = vendor.products[product]
                self.send_json({"phone": f"+1415555{lead_number(lead) % 10000:04d}" if hit else None,
                                "cost": p["price_hit"] if hit else p["price_miss"]})

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def is_hit(self, product: str, lead: str) -> bool:
        """The test-set answer: ``frac(n * a + b) < rate``."""
        n = lead_number(lead)
        mult = _MULT.get(product, (math.sqrt(3) - 1) / 2)
        return (n * mult + 0.137) % 1.0 < self.products[product]["rate"]

    def __enter__(self) -> PricedVendor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def total(self, product: str | None = None) -> int:
        """Answered calls (of one product, or all)."""
        with self.lock:
            return sum(sum(c.values()) for p, c in self.calls.items() if product in (None, p))

    def reset(self) -> None:
        """Forget the counted calls."""
        with self.lock:
            for c in self.calls.values():
                c.clear()


class VendorSettings(StationSettings):
    """Where the vendor listens (``COSTVENDOR_URL``)."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, env_ignore_empty=True, env_prefix="COSTVENDOR_")

    url: str = "http://127.0.0.1:9"


class _Priced(Station):
    product: ClassVar[str] = ""
    requires = ("name",)
    provides = {"phone": str}
    cost = 0.03
    timeout = 10.0
    retry = RetryPolicy(max_attempts=1)
    Settings = VendorSettings

    async def open(self) -> None:
        import httpx

        self._client = httpx.AsyncClient(timeout=10)

    async def close(self) -> None:
        await self._client.aclose()

    async def process(self, ctx: StepContext) -> Outcome:
        url = ctx.settings.url  # type: ignore[attr-defined]
        resp = await self._client.post(f"{url}/{self.product}", json={"lead": ctx.lead_id})
        if resp.status_code >= 500:
            raise ServerError(f"{self.product}: HTTP {resp.status_code}")
        body = resp.json()
        phone = body.get("phone")
        return Outcome({"phone": phone}, cost=float(body["cost"]),
                       misses={} if phone else {"phone": "no phone found"})


class VendorA(_Priced):
    """Fake paid phone lookup, product ``a``."""

    name = "VendorA"
    product = "a"
    cost = 0.01


class VendorB(_Priced):
    """Fake paid phone lookup, product ``b``."""

    name = "VendorB"
    product = "b"
    cost = 0.03


class StableMissVendor(VendorB):
    """``VendorB`` whose "no phone found" is a stable answer (cached)."""

    name = "StableMissVendor"
    cache_misses = True


class Shout(Station):
    """Free: the name in capitals."""

    name = "Shout"
    requires = ("name",)
    provides = {"shout": str}

    async def process(self, ctx: StepContext) -> Outcome:
        return Outcome({"shout": str(ctx.get("name")).upper()})


STATIONS: list[type[Station]] = [VendorA, VendorB, StableMissVendor, Shout]


@hookimpl
def register_stations() -> list[type[Station]]:
    return STATIONS
