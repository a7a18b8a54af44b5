"""A scriptable HTTP server for tests: a small ASGI app under uvicorn on 127.0.0.1 and a free port.

Each path answers by a *behaviour*, a function of the call's index on that path (0-based), so a test
can say "fail 3 times, then succeed", "429 with Retry-After", "slow down", or "flap"::

    async with serve_scripted() as server:
        server.route("/pay", fail_times(2, status=503))
        server.route("/slow", Reply(delay=0.2))
        ...
        await server.wait_for(lambda: server.calls("/pay") >= 3)
        assert server.max_in_flight <= 4

Everything the server saw is recorded (method, path, headers, body, arrival time) and the number of
requests in flight at once is tracked. :func:`serve_scripted` runs in the test's event loop (so
conditions can be awaited); :func:`serve_scripted_in_thread` runs in its own thread (benchmarks, sync code).
The listening socket is bound and listening before the server task starts, so no start-up wait is needed.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``body`` may be bytes, str, or anything JSON-serialisable."""

    status: int = 200
    body: Any = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def encoded(self) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        headers = {k.lower(): v for k, v in self.headers.items()}
        if isinstance(self.body, bytes):
            body = self.body
        elif isinstance(self.body, str):
            body = self.body.encode()
        else:
            body = json.dumps(self.body).encode()
            headers.setdefault("content-type", "application/json")
        headers["content-length"] = str(len(body))
        return body, [(k.encode(), v.encode()) for k, v in headers.items()]


Behaviour = Callable[[int], Reply]
"""Maps the index of a call on a path (0 for the first) to its reply."""

OK = Reply()


def always(reply: Reply) -> Behaviour:
    return lambda _index: reply


def sequence(*replies: Reply, then: Reply = OK) -> Behaviour:
    """The given replies in order, then ``then`` forever."""
    return lambda index: replies[index] if index < len(replies) else then


def fail_times(
    times: int, *, status: int = 500, headers: dict[str, str] | None = None, then: Reply = OK
) -> Behaviour:
    """``times`` failures with ``status``, then ``then``."""
    failure = Reply(status=status, body=b"scripted failure", headers=headers or {})
    return sequence(*([failure] * times), then=then)


def rate_limited(times: int, *, retry_after: str = "1", then: Reply = OK) -> Behaviour:
    """``times`` answers of 429 with ``Retry-After``, then ``then``."""
    return fail_times(times, status=429, headers={"Retry-After": retry_after}, then=then)


def flapping(period: int, *, up: Reply = OK, down: Reply | None = None) -> Behaviour:
    """``period`` good answers, ``period`` bad ones, and so on."""
    bad = down or Reply(status=503, body=b"flapping")
    return lambda index: up if (index // period) % 2 == 0 else bad


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class ScriptedApp:
    """The ASGI app; routes unknown paths to ``default``."""

    def __init__(self, default: Behaviour | None = None) -> None:
        self.default = default or always(OK)
        self._routes: dict[str, Behaviour] = {}
        self._counts: defaultdict[str, int] = defaultdict(int)
        self.requests: list[Recorded] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._changed: asyncio.Condition | None = None

    def route(self, path: str, behaviour: Behaviour | Reply) -> None:
        """Script ``path``; its call index starts again from 0."""
        self._routes[path] = always(behaviour) if isinstance(behaviour, Reply) else behaviour
        self._counts[path] = 0

    def calls(self, path: str | None = None) -> int:
        """Requests that arrived (on ``path``, or anywhere)."""
        if path is None:
            return len(self.requests)
        return sum(1 for r in self.requests if r.path == path)

    def arrivals(self, path: str) -> list[float]:
        return [r.at for r in self.requests if r.path == path]

    def reset_stats(self) -> None:
        self.requests.clear()
        self.max_in_flight = self.in_flight

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds; it is re-checked whenever a request starts or ends."""
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self.requests.append(Recorded(scope["method"], path, headers, body, time.monotonic()))
            index = self._counts[path]
            self._counts[path] = index + 1
            reply = self._routes.get(path, self.default)(index)
            await self._notify()
            if reply.delay:
                await asyncio.sleep(reply.delay)
            payload, raw_headers = reply.encoded()
            await send({"type": "http.response.start", "status": reply.status, "headers": raw_headers})
            await send({"type": "http.response.body", "body": payload})
        finally:
            self.in_flight -= 1
            await self._notify()


class ScriptedServer(ScriptedApp):
    """A :class:`ScriptedApp` that knows its own URL."""

    url: str = ""


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _uvicorn(app: ScriptedApp, http: str = "h11") -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        ws="none",
        http=http,
        # A test ends with a slow request in flight: do not wait for it. uvicorn annotates an int but
        # hands the value to asyncio.wait_for, which takes seconds as a float.
        timeout_graceful_shutdown=0.1,  # type: ignore[arg-type]
    )
    return uvicorn.Server(config)


@asynccontextmanager
async def serve_scripted(default: Behaviour | None = None) -> AsyncIterator[ScriptedServer]:
    """Serve a fresh :class:`ScriptedServer` in the running event loop."""
    app = ScriptedServer(default)
    sock = _listening_socket()
    app.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = _uvicorn(app)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield app
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextmanager
def serve_scripted_in_thread(
    default: Behaviour | None = None, *, http: str = "h11"
) -> Iterator[ScriptedServer]:
    """Serve a fresh :class:`ScriptedServer` from a thread with its own event loop."""
    app = ScriptedServer(default)
    sock = _listening_socket()
    app.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = _uvicorn(app, http)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield app
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
