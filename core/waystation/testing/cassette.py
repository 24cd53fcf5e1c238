"""Record a real vendor session once, replay it in tests: plugins are tested on real response
bodies, for free, with no network.

::

    def test_lookup_real_body(cassette):
        base = cassette("tests/cassettes/lookup.json", real_url="https://api.telnyx.com",
                        secrets=[os.environ.get("TELNYX_API_KEY", "")])
        run = run_sync(lambda: run_station(TelnyxGatekeepStation, lead,
                                           settings={"base_url": base, "api_key": key}))

*Replay* (the default): the cassette's interactions are served by the fake vendor; the station's
requests are matched on method, path and query (scrubbed values match anything); repeated
requests get the next recorded answer for the same request, the last one repeats.

*Record* (``WAYSTATION_RECORD=1`` in the environment, or ``record=True``, **and** a ``real_url``):
every request the station sends to the fake vendor is forwarded to ``real_url`` once; the answer
is returned to the station and kept; :meth:`Cassette.save` (the fixture calls it) writes the
cassette with secrets scrubbed: auth headers, secret-looking query/form/JSON parameters, and every
known secret value wherever it appears (request or response) become ``<SCRUBBED>``.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from waystation.testing.fake_vendor import FakeVendor, RecordedRequest, Reply, is_auth_header

SCRUBBED = "<SCRUBBED>"
#: Query / form / JSON parameter names scrubbed by default.
SECRET_PARAMS = frozenset({"key", "api_key", "apikey", "api-key", "token", "access_token", "auth_token",
                           "secret", "client_secret", "password", "passwd", "signature"})
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive",
                         "content-encoding", "proxy-connection", "upgrade"})
_RESPONSE_SECRET_HEADERS = frozenset({"set-cookie"})
_FORMAT = 1


def record_requested() -> bool:
    """Whether ``WAYSTATION_RECORD`` asks for recording."""
    return os.environ.get("WAYSTATION_RECORD", "").strip().lower() in ("1", "true", "yes", "on")


class CassetteError(AssertionError):
    """A cassette is missing, malformed, or has no answer for a request."""


class Cassette:
    """One cassette file (JSON) and its interactions (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], *, real_url: str | None = None,
                 secrets: Iterable[str] = (), scrub_headers: Iterable[str] = (),
                 scrub_params: Iterable[str] = (), record: bool | None = None, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.real_url = real_url.rstrip("/") if real_url else None
        self.secrets = [s for s in secrets if s]
        self.scrub_headers = {h.lower() for h in scrub_headers}
        self.scrub_params = SECRET_PARAMS | {p.lower() for p in scrub_params}
        want = record_requested() if record is None else record
        self.mode = "record" if (want and self.real_url) else "replay"
        self.timeout = timeout
        self.interactions: list[dict[str, Any]] = []
        self.misses: list[str] = []
        self._used: set[int] = set()
        self._lock = threading.Lock()
        if self.mode == "replay":
            self._load()

    # -- file -------------------------------------------------------------------------------

    def _load(self) -> None:
        if not self.path.exists():
            raise CassetteError(
                f"cassette {self.path} does not exist: record it once with WAYSTATION_RECORD=1 and the "
                "vendor's real base URL (and your key in the environment)")
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            self.interactions = list(doc["interactions"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CassetteError(f"cassette {self.path} is not a waystation cassette: {exc}") from None

    def save(self) -> None:
        """Write the cassette (record mode only; replay never rewrites it)."""
        if self.mode != "record":
            return
        doc = {"waystation_cassette": _FORMAT, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "recorded_from": self.real_url, "interactions": self.interactions}
        text = self._scrub_text(json.dumps(doc, indent=2, ensure_ascii=False))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(text + "\n", encoding="utf-8")

    # -- scrubbing --------------------------------------------------------------------------

    def _scrub_text(self, text: str) -> str:
        from waystation.redact import variants

        for s in self.secrets:
            # the raw value, its URL-encoded and base64 forms, and each of those as escaped in JSON
            for v in sorted(variants(s), key=len, reverse=True):
                text = text.replace(v, SCRUBBED)
                escaped = json.dumps(v)[1:-1]
                if escaped != v:
                    text = text.replace(escaped, SCRUBBED)
        return text

    def _scrub_pairs(self, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(k, SCRUBBED if k.lower() in self.scrub_params else self._scrub_text(v)) for k, v in pairs]

    def _scrub_body(self, body: bytes, content_type: str) -> str:
        text = body.decode("utf-8", "replace")
        if "application/x-www-form-urlencoded" in content_type:
            return urlencode(self._scrub_pairs(parse_qsl(text, keep_blank_values=True)))
        if "json" in content_type:
            try:
                data = json.loads(text)
            except ValueError:
                return self._scrub_text(text)
            if isinstance(data, dict):
                data = {k: (SCRUBBED if k.lower() in self.scrub_params else v) for k, v in data.items()}
            return self._scrub_text(json.dumps(data))
        return self._scrub_text(text)

    def _scrub_request(self, req: RecordedRequest) -> dict[str, Any]:
        headers = {}
        for k, v in req.headers.items():
            low = k.lower()
            if low in ("host", "content-length"):
                continue
            headers[k] = SCRUBBED if (is_auth_header(k) or low in self.scrub_headers) else self._scrub_text(v)
        return {"method": req.method, "path": self._scrub_text(req.path),
                "query": self._scrub_pairs(req.query), "headers": headers,
                "body": self._scrub_body(req.body, req.header("content-type") or "")}

    # -- serving ----------------------------------------------------------------------------

    def attach(self, vendor: FakeVendor, path: str = "*") -> str:
        """Serve this cassette (or record through it) on ``vendor``; returns the base URL to give
        the station."""
        vendor.handle(path, self._record if self.mode == "record" else self._replay)
        return vendor.url

    def _key(self, method: str, path: str, query: Iterable[Iterable[str]]) -> tuple[str, str, list[list[str]]]:
        return method.upper(), path, sorted([list(p) for p in query])

    def _matches(self, recorded: Mapping[str, Any], method: str, path: str, query: list[list[str]]) -> bool:
        r_method, r_path, r_query = self._key(recorded["method"], recorded["path"], recorded["query"])
        if r_method != method or r_path != path or len(r_query) != len(query):
            return False
        return all(rk == k and rv in (v, SCRUBBED) for (rk, rv), (k, v) in zip(r_query, query, strict=True))

    def _replay(self, req: RecordedRequest) -> Reply:
        method, path, query = self._key(req.method, self._scrub_text(req.path), self._scrub_pairs(req.query))
        with self._lock:
            candidates = [i for i, it in enumerate(self.interactions)
                          if self._matches(it["request"], method, path, query)]
            if not candidates:
                miss = f"{method} {req.url}"
                self.misses.append(self._scrub_text(miss))
                return Reply.text(f"cassette {self.path.name} has no interaction for {self._scrub_text(miss)}",
                                  599)
            fresh = [i for i in candidates if i not in self._used]
            i = fresh[0] if fresh else candidates[-1]
            self._used.add(i)
        resp = self.interactions[i]["response"]
        body = base64.b64decode(resp["body"]) if resp.get("encoding") == "base64" else resp["body"].encode()
        headers = {k: v for k, v in resp.get("headers", {}).items() if k.lower() not in _HOP_BY_HOP}
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        return Reply(int(resp["status"]), body, headers, ctype)

    def _record(self, req: RecordedRequest) -> Reply:
        assert self.real_url is not None
        target = urlsplit(self.real_url)
        conn_cls = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
        conn = conn_cls(target.netloc, timeout=self.timeout)
        headers = {k: v for k, v in req.headers.items() if k.lower() not in ("host", "accept-encoding")}
        headers["Accept-Encoding"] = "identity"
        url = target.path.rstrip("/") + req.url
        try:
            conn.request(req.method, url, body=req.body or None, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            status = resp.status
            resp_headers = [(k, v) for k, v in resp.getheaders()]
        finally:
            conn.close()
        out_headers: dict[str, str] = {}
        for k, v in resp_headers:
            if k.lower() in _HOP_BY_HOP:
                continue
            out_headers[k] = SCRUBBED if k.lower() in _RESPONSE_SECRET_HEADERS else self._scrub_text(v)
        try:
            text = body.decode("utf-8")
            stored: dict[str, Any] = {"status": status, "headers": out_headers, "body": self._scrub_text(text)}
        except UnicodeDecodeError:
            stored = {"status": status, "headers": out_headers, "encoding": "base64",
                      "body": base64.b64encode(body).decode()}
        with self._lock:
            self.interactions.append({"request": self._scrub_request(req), "response": stored})
        ctype = next((v for k, v in resp_headers if k.lower() == "content-type"), None)
        passed = {k: v for k, v in resp_headers if k.lower() not in _HOP_BY_HOP and k.lower() != "content-type"}
        return Reply(status, body, passed, ctype)


__all__ = ["SCRUBBED", "SECRET_PARAMS", "Cassette", "CassetteError", "record_requested"]
