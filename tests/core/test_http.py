"""waystation.http against real HTTP servers on 127.0.0.1: capped reads, status mapping, waits,
credentials only to allowed hosts, same-host redirects, quoting, shared pooled clients."""

from __future__ import annotations

import gzip
import ssl
import zlib
from collections.abc import Iterator

import pytest
from pydantic import BaseModel, SecretStr
from pytest_httpserver import HTTPServer
from waystation.errors import (
    AuthError,
    QuotaExhaustedError,
    ServerError,
    ThrottledError,
    TransientError,
    VendorTimeout,
)
from waystation.http import (
    BadRequestError,
    BadResponse,
    CredentialRefused,
    Credentials,
    HostPolicy,
    NotFoundError,
    RedirectRefused,
    ResponseTooLarge,
    VendorClient,
    VendorSettings,
    classify_status,
    error_for_status,
    open_clients,
    path_segment,
)
from waystation.resilience.policies import retry_after_from_headers
from werkzeug import Request, Response

KEY = "sk-test-7f3a9c+/=="


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    srv = HTTPServer(host="127.0.0.1", port=0)
    srv.start()
    yield srv
    srv.clear()
    srv.stop()


def client(server: HTTPServer, **kw: object) -> VendorClient:
    kw.setdefault("allow_hosts", ["127.0.0.1"])
    return VendorClient("ToyStation", server.url_for("/").rstrip("/"), vendor="Toy", hosts=["api.toy.example"],
                        **kw)  # type: ignore[arg-type]


class Lookup(BaseModel):
    line_type: str
    score: float


# --------------------------------------------------------------------------- bodies


async def test_json_body_parsed_into_the_model(server: HTTPServer) -> None:
    server.expect_request("/v1/x").respond_with_json({"line_type": "mobile", "score": 0.5})
    http = client(server)
    resp = await http.get("v1/x")
    assert resp.ok and (await resp.parse(Lookup)) == Lookup(line_type="mobile", score=0.5)
    await http.aclose()


@pytest.mark.parametrize(("body", "why"), [
    (b"<html>not json</html>", "not JSON"),
    (b'{"line_type": "mobile", "sc', "not JSON"),
    (b'{"line_type": ["mobile"], "score": "high"}', "unexpected body"),
    (b"[1, 2, 3]", "unexpected body"),
])
async def test_garbage_truncated_and_wrongly_typed_bodies_are_reasoned_server_errors(
        server: HTTPServer, body: bytes, why: str) -> None:
    server.expect_request("/v1/x").respond_with_data(body, content_type="application/json")
    http = client(server)
    resp = await http.get("v1/x")
    with pytest.raises(BadResponse, match=why) as err:
        resp.model(Lookup)
    assert isinstance(err.value, ServerError) and err.value.category == "server_error"
    await http.aclose()


async def test_a_gzip_bomb_stops_at_the_decoded_cap(server: HTTPServer) -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # ~64 KiB on the wire, 64 MiB decoded
    assert len(bomb) < 200_000
    server.expect_request("/bomb").respond_with_data(bomb, headers={"Content-Encoding": "gzip"},
                                                     content_type="application/json")
    http = client(server, max_bytes=1024 * 1024)
    with pytest.raises(ResponseTooLarge, match="decoded"):
        await http.get("bomb")
    await http.aclose()


async def test_gzip_and_deflate_bodies_are_decoded(server: HTTPServer) -> None:
    data = b'{"line_type": "voip", "score": 1}'
    server.expect_request("/gz").respond_with_data(gzip.compress(data), headers={"Content-Encoding": "gzip"})
    server.expect_request("/zl").respond_with_data(zlib.compress(data), headers={"Content-Encoding": "deflate"})
    raw = zlib.compressobj(wbits=-15)
    server.expect_request("/raw").respond_with_data(raw.compress(data) + raw.flush(),
                                                    headers={"Content-Encoding": "deflate"})
    http = client(server)
    for path in ("gz", "zl", "raw"):
        assert (await http.get(path)).body == data
    await http.aclose()


async def test_a_truncated_gzip_body_is_a_bad_response(server: HTTPServer) -> None:
    cut = gzip.compress(b'{"line_type": "voip", "score": 1}' * 100)[:40]
    server.expect_request("/cut").respond_with_data(cut, headers={"Content-Encoding": "gzip"})
    http = client(server)
    with pytest.raises(BadResponse, match="truncated"):
        await http.get("cut")
    await http.aclose()


async def test_a_huge_body_stops_at_the_wire_cap_declared_or_streamed(server: HTTPServer) -> None:
    sent: list[int] = []

    def stream(_: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            for _ in range(2000):  # 128 MiB if read whole
                sent.append(1)
                yield b"x" * 65536
        return Response(chunks(), content_type="application/json")  # chunked: no Content-Length

    server.expect_request("/stream").respond_with_handler(stream)
    server.expect_request("/declared").respond_with_data(b"x" * (3 * 1024 * 1024))
    http = client(server, max_bytes=1024 * 1024)
    with pytest.raises(ResponseTooLarge, match="on the wire"):
        await http.get("stream")
    with pytest.raises(ResponseTooLarge, match="3,145,728 bytes"):
        await http.get("declared")
    assert len(sent) < 2000  # the server was not read to the end
    await http.aclose()


async def test_unrequested_encodings_are_refused(server: HTTPServer) -> None:
    server.expect_request("/br").respond_with_data(b"\x1b\x00", headers={"Content-Encoding": "br"})
    http = client(server)
    with pytest.raises(BadResponse, match="'br'"):
        await http.get("br")
    await http.aclose()


async def test_transport_failures_are_mapped(server: HTTPServer) -> None:
    http = VendorClient("ToyStation", "http://127.0.0.1:9", vendor="Toy", timeout=2)
    with pytest.raises(TransientError, match="connection failed"):
        await http.get("x")
    await http.aclose()
    server.expect_request("/slow").respond_with_handler(lambda _: (__import__("time").sleep(1.5), Response("{}"))[1])
    slow = client(server, timeout=0.3)
    with pytest.raises(VendorTimeout):
        await slow.get("slow")
    await slow.aclose()


# --------------------------------------------------------------------------- statuses and waits


@pytest.mark.parametrize(("status", "kind", "error"), [
    (200, "ok", None), (401, "auth", AuthError), (403, "auth", AuthError),
    (402, "exhausted", QuotaExhaustedError), (429, "throttled", ThrottledError),
    (404, "not_found", NotFoundError), (400, "bad_request", BadRequestError),
    (422, "bad_request", BadRequestError), (408, "timeout", VendorTimeout),
    (500, "server_error", ServerError), (503, "server_error", ServerError),
])
def test_status_categories(status: int, kind: str, error: type[Exception] | None) -> None:
    assert classify_status(status) == kind
    err = error_for_status(status, {}, vendor="Toy", detail="d", auth_hint="check TOY_KEY")
    if error is None:
        assert err is None
    else:
        assert type(err) is error and f"Toy answered HTTP {status} (d)" in str(err)
    if kind == "auth":
        assert "check TOY_KEY" in str(err)


def test_quota_429_is_exhausted_and_waits_come_from_the_headers() -> None:
    assert isinstance(error_for_status(429, {}, vendor="T", quota=True), QuotaExhaustedError)
    err = error_for_status(429, {"x-ratelimit-reset": "30"}, vendor="T")
    assert isinstance(err, ThrottledError) and err.retry_after == 30.0
    assert retry_after_from_headers({"retry-after": "12"}) == 12.0
    assert retry_after_from_headers({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0
    assert retry_after_from_headers({"x-ratelimit-reset": "1445412490"}, now=1445412470.0) == 20.0
    assert retry_after_from_headers({"x-ratelimit-requests-reset": "7"}) == 7.0
    assert retry_after_from_headers({"ratelimit-reset": "3"}) == 3.0
    assert retry_after_from_headers({"retry-after": "soon"}) is None
    assert retry_after_from_headers({}) is None


# --------------------------------------------------------------------------- credentials


def test_host_policy() -> None:
    p = HostPolicy(("api.toy.example", ".toy-cdn.example"), ("127.0.0.1:8080",))
    assert p.permits("https://api.toy.example/v1")
    assert not p.permits("http://api.toy.example/v1")  # never over plain http
    assert p.permits("https://eu.toy-cdn.example/x") and not p.permits("https://toy-cdn.example.evil/x")
    assert not p.permits("https://evil.example/v1")
    assert p.permits("http://127.0.0.1:8080/x") and not p.permits("http://127.0.0.1:8081/x")
    assert p.overridden("http://127.0.0.1:8080/x") and not p.overridden("https://api.toy.example/")


async def test_a_key_is_never_sent_to_a_host_the_station_does_not_declare(server: HTTPServer) -> None:
    server.expect_request("/v1/x").respond_with_json({"line_type": "mobile", "score": 1})
    creds = Credentials(headers={"Authorization": SecretStr(KEY)}, header_format={"Authorization": "Bearer {}"})
    http = client(server, credentials=creds, allow_hosts=[])
    with pytest.raises(CredentialRefused, match="allow_hosts"):
        http.check_credentials()
    with pytest.raises(CredentialRefused) as err:
        await http.get("v1/x")
    assert KEY not in str(err.value) and err.value.category == "auth"
    assert len(server.log) == 0  # nothing was sent
    await http.aclose()


async def test_a_route_can_allow_a_test_server_and_the_key_goes_only_in_its_header(
        server: HTTPServer, caplog: pytest.LogCaptureFixture) -> None:
    server.expect_request("/v1/x").respond_with_json({"line_type": "mobile", "score": 1})
    creds = Credentials(headers={"Authorization": SecretStr(KEY)}, header_format={"Authorization": "Bearer {}"},
                        params={"token": SecretStr(KEY)})
    http = client(server, credentials=creds)
    await http.open()
    assert "allows its key to be sent to http://127.0.0.1" in caplog.text
    resp = await http.get("v1/x", params={"q": "1"})
    req = server.log[0][0]
    assert req.headers["Authorization"] == f"Bearer {KEY}" and req.args["token"] == KEY
    assert KEY not in resp.url  # the final URL kept on the response has no query
    await http.aclose()


def test_vendor_settings_allow_hosts_from_env_and_route(monkeypatch: pytest.MonkeyPatch) -> None:
    class S(VendorSettings):
        model_config = VendorSettings.model_config | {"env_prefix": "TOYTEST_"}

    monkeypatch.setenv("TOYTEST_ALLOW_HOSTS", "127.0.0.1:8080, http://localhost:9000/x")
    assert S().allow_hosts == ("127.0.0.1:8080", "localhost:9000")
    assert S(allow_hosts=["Proxy.Example"]).allow_hosts == ("proxy.example",)
    assert S().max_response_bytes == 5 * 1024 * 1024


def test_credentials_presence() -> None:
    assert not Credentials(headers={"X-Key": SecretStr("")}).present
    assert not Credentials(headers={"X-Key": None}).present
    assert Credentials(headers={"X-Key": SecretStr("k")}).present


# --------------------------------------------------------------------------- redirects


async def test_a_redirect_to_another_host_is_not_followed(server: HTTPServer) -> None:
    other = HTTPServer(host="127.0.0.1", port=0)
    other.start()
    try:
        other.expect_request("/steal").respond_with_data("got it")
        target = other.url_for("/steal").replace("127.0.0.1", "localhost")
        server.expect_request("/go").respond_with_data("", status=302, headers={"Location": target})
        http = client(server, follow_redirects=True, credentials=Credentials(headers={"X-Key": KEY}),
                      allow_hosts=["127.0.0.1", "localhost"])
        with pytest.raises(RedirectRefused, match="another host"):
            await http.get("go")
        assert len(other.log) == 0
        await http.aclose()
    finally:
        other.clear()
        other.stop()


async def test_a_same_host_redirect_is_followed_and_loops_are_cut(server: HTTPServer) -> None:
    server.expect_request("/old").respond_with_data("", status=301, headers={"Location": "/new"})
    server.expect_request("/new").respond_with_json({"line_type": "mobile", "score": 1})
    server.expect_request("/loop").respond_with_data("", status=302, headers={"Location": "/loop"})
    http = client(server, follow_redirects=True)
    assert (await http.get("old")).model(Lookup).line_type == "mobile"
    with pytest.raises(RedirectRefused, match="more than"):
        await http.get("loop")
    no_follow = client(server)
    assert (await no_follow.get("old")).status == 301
    await http.aclose()
    await no_follow.aclose()


# --------------------------------------------------------------------------- quoting, pooling, TLS


@pytest.mark.parametrize(("raw", "quoted"), [
    ("+14155550100", "+14155550100"), ("../../admin/delete?all=1#", "..%2F..%2Fadmin%2Fdelete%3Fall=1%23"),
    ("..", "%2E%2E"), (".", "%2E"), ("a b%", "a%20b%25"),
])
def test_path_segment(raw: str, quoted: str) -> None:
    assert path_segment(raw) == quoted


async def test_path_segment_keeps_the_request_on_its_path(server: HTTPServer) -> None:
    server.expect_request("/v1/lookup/..%2F..%2Fadmin").respond_with_data("{}")
    http = client(server)
    await http.get(f"v1/lookup/{path_segment('../../admin')}")
    assert server.log[0][0].path.startswith("/v1/lookup/")
    await http.aclose()


async def test_stations_of_one_name_share_one_pooled_client() -> None:
    base = open_clients()
    a = VendorClient("PoolStation", "https://api.toy.example", max_connections=7)
    b = VendorClient("PoolStation", "https://api.toy.example", max_connections=7)
    c = VendorClient("OtherStation", "https://api.toy.example")
    for x in (a, b, c):
        await x.open()
    assert a.client is b.client and a.client is not c.client
    assert open_clients() == base + 2
    await a.aclose()
    assert not b.client.is_closed
    shared = b.client
    await b.aclose()
    await c.aclose()
    assert shared.is_closed and open_clients() == base


async def test_tls_is_verified() -> None:
    http = VendorClient("TlsStation", "https://api.toy.example")
    await http.open()
    pool = http.client._transport._pool  # type: ignore[attr-defined]
    assert pool._ssl_context.verify_mode == ssl.CERT_REQUIRED and pool._ssl_context.check_hostname
    await http.aclose()


def test_credential_overrides_of_a_plan_are_listed() -> None:
    from typing import Any, ClassVar

    from waystation import Engine, Outcome, Station, StepContext

    class KeyedSettings(VendorSettings):
        api_key: SecretStr | None = None

    class Keyed(Station):
        """A station with a key."""

        name = "Keyed"
        provides: ClassVar[dict[str, Any]] = {"x": str}
        Settings = KeyedSettings
        vendor_hosts = ("api.keyed.example",)

        async def process(self, ctx: StepContext) -> Outcome:
            return Outcome()

    text = ("name: r\nsteps:\n  - station: Keyed\n    settings: {allow_hosts: ['127.0.0.1:8080']}\n"
            "  - {id: plain, station: Keyed, after: Keyed}\n")
    plan = Engine.from_text(text, [Keyed]).plan
    from waystation.http import credential_overrides

    assert credential_overrides(plan) == [
        "step 'Keyed': Keyed may send its key to 127.0.0.1:8080 (allow_hosts), besides its vendor hosts "
        "(api.keyed.example); http allowed there"]
    # `waystation check` and `run --dry-run` print the plan's warnings: the override is one of them
    [warning] = [w for w in plan.warnings if "allow_hosts" in str(w)]
    assert warning.line == 4 and "127.0.0.1:8080" in warning.message
