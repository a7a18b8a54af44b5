"""The bounded HTTP server (services/http_server.py) on 127.0.0.1: header limits, read deadlines, the
connection limit, and that ordinary requests (large provider headers, keep-alive, pipelining) still pass.

Each test runs a real uvicorn with the bounded protocol in a thread and talks raw HTTP/1.1 over sockets,
with short limits so that every case ends in a second or two.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from services import http_server, runtime
from services.cli import main as cli
from services.config import EdgeSettings
from services.http_server import DROPPED, BoundedConfig, BoundedHttpToolsProtocol, ServerLimits
from services.kafka.local import free_ports

LIMITS = ServerLimits(
    max_header_bytes=8 * 1024,
    max_headers=20,
    header_timeout_seconds=0.6,
    body_timeout_seconds=2.0,
    body_idle_timeout_seconds=0.6,
    max_connections=8,
    retry_after_seconds=7,
)


async def echo(scope: dict[str, object], receive: object, send: object) -> None:
    """Read the whole body, answer 200 with what arrived."""
    assert scope["type"] == "http"
    size = 0
    more = True
    while more:
        message = await receive()  # type: ignore[operator]
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    received = scope["headers"]
    assert isinstance(received, list)
    body = json.dumps({"body": size, "headers": len(received), "path": scope["path"]}).encode()
    length = str(len(body)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", length)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": body})  # type: ignore[operator]


@contextlib.contextmanager
def serving(limits: ServerLimits = LIMITS, keep_alive: int = 5) -> Iterator[tuple[int, uvicorn.Server]]:
    (port,) = free_ports(1)
    config = BoundedConfig(
        echo,
        limits,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_keep_alive=keep_alive,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="bounded-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield port, server
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with serving() as (port, _):
        yield port


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or resets after its answer)."""
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response.split(b" ", 2)[1])


def trickle(sock: socket.socket, every: float, most: int) -> float:
    """A byte every ``every`` seconds until the server answers (at most ``most``); how long it took."""
    start = time.monotonic()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        for _ in range(most):
            sock.sendall(b"x")
            readable, _, _ = select.select([sock], [], [], every)
            if readable:
                break
    return time.monotonic() - start


def request(path: str = "/", headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "host: edge", f"content-length: {len(body)}", "connection: close"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def exchange(port: int, data: bytes) -> bytes:
    with connect(port) as sock:
        sock.sendall(data)
        return read_all(sock)


def json_body(response: bytes) -> dict[str, object]:
    result: dict[str, object] = json.loads(response.split(b"\r\n\r\n", 1)[1])
    return result


# What real providers send, at their largest: PayPal's certificate URL and RSA signature, GitHub's hook
# headers, a proxy's forwarding headers. Far under the limit; they must pass untouched.
PAYPAL = [
    ("paypal-transmission-id", "69cd13f0-d67a-11e5-baa3-778b53f4ae55"),
    ("paypal-transmission-time", "2016-02-18T20:01:35Z"),
    ("paypal-transmission-sig", "A" * 344),
    ("paypal-cert-url", "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-" + "a" * 40),
    ("paypal-auth-algo", "SHA256withRSA"),
    ("paypal-auth-version", "v2"),
    ("user-agent", "PayPal/AUHD-214.0-52392296"),
]
GITHUB = [
    ("x-github-event", "push"),
    ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ("x-github-hook-id", "292430182"),
    ("x-github-hook-installation-target-id", "79929171"),
    ("x-github-hook-installation-target-type", "repository"),
    ("x-hub-signature", "sha1=" + "f" * 40),
    ("x-hub-signature-256", "sha256=" + "e" * 64),
    ("user-agent", "GitHub-Hookshot/044aadd"),
    ("x-forwarded-for", ", ".join(f"140.82.115.{i}" for i in range(40))),
]


@pytest.mark.parametrize("headers", [PAYPAL, GITHUB], ids=["paypal", "github"])
def test_real_provider_headers_pass(port: int, headers: list[tuple[str, str]]) -> None:
    response = exchange(port, request("/webhooks/p", headers, b"{}"))
    assert status(response) == 200
    assert json_body(response) == {"body": 2, "headers": 3 + len(headers), "path": "/webhooks/p"}


header_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=30).map(lambda s: "x" + s)
header_value = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=2000)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(headers=st.lists(st.tuples(header_name, header_value), max_size=LIMITS.max_headers - 3))
def test_heads_under_the_limits_pass(port: int, headers: list[tuple[str, str]]) -> None:
    data = request("/", headers, b"x" * 10)
    head = len(data) - 10
    response = exchange(port, data)
    if head <= LIMITS.max_header_bytes:
        assert status(response) == 200
        assert json_body(response)["headers"] == 3 + len(headers)
    elif head > LIMITS.max_header_bytes + 64:  # the server counts fields, not the request line's framing
        assert status(response) == 431


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.integers(min_value=1, max_value=200))
def test_too_many_header_fields_get_431(port: int, extra: int) -> None:
    headers = [(f"x-h{i}", "v") for i in range(LIMITS.max_headers - 3 + extra)]
    response = exchange(port, request("/", headers))
    assert status(response) == 431
    assert b"header fields" in response


def test_unterminated_header_gets_431_at_max_header_bytes(port: int) -> None:
    """A header that does not end: 431 once the head passes max_header_bytes, readable by the client."""
    with connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nhost: edge\r\nx-big: " + b"a" * (512 * 1024))
        sock.shutdown(socket.SHUT_WR)
        response = read_all(sock)
    assert status(response) == 431
    assert b"exceed 8192 bytes" in response


def test_endless_header_is_cut_off(port: int) -> None:
    """A client that keeps sending its header is cut off after a bounded drain, not read for ever."""
    sent = 0
    with connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nhost: edge\r\nx-flood: ")
        chunk = b"a" * 65536
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < 64 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
        response = read_all(sock)
    assert sent < 8 * 1024 * 1024  # socket buffers and the 1 MiB drain, nowhere near 64 MB
    assert response == b"" or status(response) == 431  # answered, unless the reset overtook the answer


def test_long_request_line_is_cut_too(port: int) -> None:
    response = exchange(port, b"GET /" + b"a" * (LIMITS.max_header_bytes + 10) + b" HTTP/1.1\r\n\r\n")
    assert status(response) == 431


def test_slow_head_gets_408_after_header_timeout(port: int) -> None:
    before = DROPPED.get("header_timeout", 0)
    with connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nhost: edge\r\n")
        elapsed = trickle(sock, every=0.1, most=50)  # the head never completes in time
        response = read_all(sock)
    assert DROPPED["header_timeout"] == before + 1  # what /metrics reports
    assert status(response) == 408
    assert LIMITS.header_timeout_seconds * 0.9 <= elapsed < LIMITS.header_timeout_seconds + 2


def test_silent_connection_is_closed_after_header_timeout(port: int) -> None:
    with connect(port) as sock:
        start = time.monotonic()
        assert read_all(sock) == b""  # nothing was asked, nothing is answered: closed
        assert time.monotonic() - start < LIMITS.header_timeout_seconds + 2


def test_stalled_body_gets_408_after_body_idle_timeout(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(request("/", body=b"x" * 100)[:-60])  # 40 of 100 bytes, then silence
        start = time.monotonic()
        response = read_all(sock)
        elapsed = time.monotonic() - start
    assert status(response) == 408
    assert b"stalled" in response
    assert LIMITS.body_idle_timeout_seconds * 0.9 <= elapsed < LIMITS.body_idle_timeout_seconds + 2


def test_trickled_body_gets_408_at_the_total_body_deadline(port: int) -> None:
    body = b"x" * 1000
    with connect(port) as sock:
        sock.sendall(request("/", body=body)[: -len(body)])
        elapsed = trickle(sock, every=0.1, most=100)  # never idle long, but never done in time
        response = read_all(sock)
    assert status(response) == 408
    assert b"body not received in time" in response
    assert LIMITS.body_timeout_seconds * 0.9 <= elapsed < LIMITS.body_timeout_seconds + 2


def test_kept_alive_connection_idles_past_header_timeout_then_is_served(port: int) -> None:
    """Between requests uvicorn's keep-alive timer rules: the head's clock starts at the next byte."""
    keep = b"GET /one HTTP/1.1\r\nhost: edge\r\n\r\n"
    with connect(port) as sock:
        sock.sendall(keep)
        first = sock.recv(65536)
        assert status(first) == 200
        time.sleep(LIMITS.header_timeout_seconds * 2)
        sock.sendall(b"GET /two HTTP/1.1\r\nhost: edge\r\nconnection: close\r\n\r\n")
        second = read_all(sock)
    assert status(second) == 200
    assert json_body(second)["path"] == "/two"


def test_pipelined_requests_are_answered_in_order(port: int) -> None:
    one = b"POST /a HTTP/1.1\r\nhost: edge\r\ncontent-length: 3\r\n\r\nabc"
    two = b"POST /b HTTP/1.1\r\nhost: edge\r\ncontent-length: 2\r\nconnection: close\r\n\r\nde"
    response = exchange(port, one + two)
    assert response.count(b"HTTP/1.1 200 OK") == 2
    assert response.index(b'"/a"') < response.index(b'"/b"')


def test_connections_past_the_limit_get_503_with_retry_after_and_established_ones_finish() -> None:
    limits = ServerLimits(**{**LIMITS.__dict__, "header_timeout_seconds": 5.0, "max_connections": 4})
    with serving(limits) as (port, server):
        established = [connect(port) for _ in range(limits.max_connections)]
        deadline = time.monotonic() + 5
        while len(server.server_state.connections) < limits.max_connections:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for sock in established:  # half a request each: they hold their places
            sock.sendall(request("/held", body=b"abcd")[:-2])
        refused = [exchange(port, request("/over", body=b"x" * 5000)) for _ in range(10)]
        for response in refused:
            assert status(response) == 503
            assert b"\r\nretry-after: 7\r\n" in response
        for sock in established:  # finish them: every one is served
            sock.sendall(b"cd")
            answer = read_all(sock)
            sock.close()
            assert status(answer) == 200
            assert json_body(answer)["path"] == "/held"
        # Places free again: a new connection is served.
        assert status(exchange(port, request("/after"))) == 200


def test_default_limits_come_from_the_edge_settings() -> None:
    edge = EdgeSettings()
    limits = ServerLimits.defaults()
    assert limits.max_header_bytes == edge.max_header_bytes == 64 * 1024
    assert limits.max_headers == edge.max_headers == 100
    assert limits.header_timeout_seconds == edge.header_timeout_seconds
    assert limits.body_timeout_seconds == edge.body_timeout_seconds
    assert limits.max_connections == edge.max_connections


def test_body_idle_timeout_cannot_exceed_the_total() -> None:
    with pytest.raises(ValueError, match="body_idle_timeout_seconds"):
        EdgeSettings(body_idle_timeout_seconds=60, body_timeout_seconds=30)


def test_config_runs_the_bounded_protocol() -> None:
    config = BoundedConfig(echo, LIMITS)
    config.load()
    assert config.http_protocol_class is BoundedHttpToolsProtocol


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ServerLimits, dict[str, object]]]:
    """What the CLI hands to services.http_server.run, instead of serving."""
    calls: list[tuple[object, ServerLimits, dict[str, object]]] = []

    def run(app: object, limits: ServerLimits, **options: object) -> None:
        calls.append((app, limits, options))

    monkeypatch.setattr(http_server, "run", run)
    monkeypatch.setattr(runtime, "freeze_startup_objects", lambda: None)
    for name in ("MAX_CONNECTIONS", "HEADER_TIMEOUT_SECONDS"):
        monkeypatch.delenv(f"BREAKWATER_EDGE__{name}", raising=False)
    return calls


def test_breakwater_edge_runs_the_bounded_server_with_the_edge_settings(
    launches: list[tuple[object, ServerLimits, dict[str, object]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BREAKWATER_EDGE__MAX_CONNECTIONS", "77")
    monkeypatch.setenv("BREAKWATER_EDGE__HEADER_TIMEOUT_SECONDS", "4.5")
    result = CliRunner().invoke(cli.app, ["edge", "--port", "1"])
    assert result.exit_code == 0, result.output
    ((_, limits, options),) = launches
    assert limits.max_connections == 77
    assert limits.header_timeout_seconds == 4.5
    assert options["timeout_keep_alive"] == EdgeSettings().keep_alive_seconds
    assert "http" not in options  # the bounded protocol, never a stock one

    launches.clear()
    result = CliRunner().invoke(cli.app, ["edge", "--port", "1", "--processes", "2"])
    assert result.exit_code == 0, result.output
    ((app, limits, options),) = launches
    assert app == "services.edge.app:app_from_environment" and options["workers"] == 2
    assert limits.max_connections == 77


def test_breakwater_operators_serve_runs_the_bounded_server(
    launches: list[tuple[object, ServerLimits, dict[str, object]]],
) -> None:
    result = CliRunner().invoke(cli.app, ["operators", "serve", "--port", "1"])
    assert result.exit_code == 0, result.output
    ((_, limits, _),) = launches
    assert limits == ServerLimits.defaults()


def test_bounded_config_survives_pickling_for_worker_processes() -> None:
    """uvicorn's worker processes receive the config pickled: the limits must go with it."""
    config = BoundedConfig("services.edge.app:app_from_environment", LIMITS, factory=True, workers=2)
    copy = pickle.loads(pickle.dumps(config))
    assert isinstance(copy, BoundedConfig) and copy.limits == LIMITS
