"""The bounded uvicorn every Breakwater HTTP listener runs: the edge, the operator API, the probes.

uvicorn (0.54) with httptools, the fastest pairing it offers, leaves a request's arrival unbounded:
httptools buffers a header of any size (four unterminated 64 MB headers took the edge from 94 to
351 MB), ``timeout_keep_alive`` only runs between requests and stops at a request's first byte, so a client
sending a byte a second holds its connection for ever, and ``limit_concurrency`` answers 503 only
once headers have arrived (and without Retry-After). h11's ``max_incomplete_event_size`` bounds
header bytes but nothing in uvicorn times a header or a body read (Kludex/uvicorn#157 closed with
this left to the application; httptools' own limit cannot be set). hypercorn has ``read_timeout``
and ``h11_max_incomplete_size`` but parses in pure Python (h11), and granian would replace the
runner, the worker processes and the tests' in-process servers; neither was adopted for that.

So this is the smallest addition that gives what a public listener needs: a subclass of uvicorn's own
httptools protocol that counts header bytes and header fields as they arrive, times the header
(from the first byte, or from accept for a new connection) and the body (idle between chunks, and a
total deadline), and answers connections past ``max_connections`` with 503 and Retry-After. Everything
else (parsing, the ASGI cycle, keep-alive, pipelining, flow control) is uvicorn's.
"""

from __future__ import annotations

import asyncio
import sys
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httptools
import uvicorn
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess

from services.config import EdgeSettings
from services.errors import BreakwaterError

LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024
"""A connection the server ends early is answered, half-closed, and read (discarding) for up to this
long and this many bytes before it is cut: closing a socket that still has unread request bytes makes
the kernel send RST, which can destroy the answer before the client reads it (nginx's lingering close)."""


@dataclass(frozen=True)
class ServerLimits:
    """What one server process accepts; see :class:`services.config.EdgeSettings` for why the defaults."""

    max_header_bytes: int
    max_headers: int
    header_timeout_seconds: float
    body_timeout_seconds: float
    body_idle_timeout_seconds: float
    max_connections: int
    retry_after_seconds: int

    @classmethod
    def from_edge(cls, edge: EdgeSettings) -> ServerLimits:
        return cls(
            max_header_bytes=edge.max_header_bytes,
            max_headers=edge.max_headers,
            header_timeout_seconds=edge.header_timeout_seconds,
            body_timeout_seconds=edge.body_timeout_seconds,
            body_idle_timeout_seconds=edge.body_idle_timeout_seconds,
            max_connections=edge.max_connections,
            retry_after_seconds=edge.retry_after_seconds,
        )

    @classmethod
    def defaults(cls) -> ServerLimits:
        """The edge's defaults, for listeners with no settings of their own (operator API, probes)."""
        return cls.from_edge(EdgeSettings())


DROPPED: dict[str, int] = {}
"""Connections this process answered and closed early, by reason (``header_timeout``, ...)."""


def _count(reason: str) -> None:
    DROPPED[reason] = DROPPED.get(reason, 0) + 1


def _observe_dropped(options: CallbackOptions) -> Iterable[Observation]:
    for reason, count in list(DROPPED.items()):
        yield Observation(count, {"reason": reason})


# Registered on import (uvicorn's worker processes import this module to unpickle their config): the
# global meter forwards to the provider services.telemetry sets up, and /metrics shows
# breakwater_http_dropped_total{reason=...}, the first thing to look at when clients report resets.
metrics.get_meter("breakwater.http").create_observable_counter(
    "breakwater.http.dropped",
    callbacks=[_observe_dropped],
    description="connections answered early and closed, by reason (limits, timeouts, bad requests)",
)


class _HeadTooLarge(BreakwaterError):
    """Raised from a parser callback so that httptools stops parsing; data_received answers 431."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


def _answer(
    status: HTTPStatus, text: str, default_headers: list[tuple[bytes, bytes]], *extra: bytes
) -> bytes:
    body = f"{text}\n".encode()
    lines = [f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode()]
    lines += [name + b": " + value + b"\r\n" for name, value in default_headers]
    lines += [
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n",
        *extra,
        b"\r\n",
        body,
    ]
    return b"".join(lines)


class _Closing(asyncio.Protocol):
    """Takes over a connection the server ends: the final answer, half-close, a bounded drain, close."""

    def __init__(self, transport: asyncio.Transport, answer: bytes, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self.drained = 0
        if answer:
            transport.write(answer)
        if transport.can_write_eof():
            transport.write_eof()
        self.timer = loop.call_later(LINGER_SECONDS, transport.abort)
        transport.set_protocol(self)
        if not transport.is_reading():  # uvicorn's flow control may have paused it
            transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.drained += len(data)  # the rest of a request we will not serve
        if self.drained > LINGER_BYTES:
            self.transport.abort()

    def eof_received(self) -> bool:
        return False  # the client is done too: close

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()


class _Sweeper:
    """One timer per server that checks every connection's deadlines a few times a second.

    A timer per connection would cost a ``call_at`` and a ``cancel`` for each head and each body
    (about 6 us each on uvloop, twice per request); the sweep costs a comparison per open connection
    per tick, and a deadline is enforced within one tick.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: set[Any], interval: float) -> None:
        self.loop = loop
        self.connections = connections
        self.interval = interval
        self.handle: asyncio.TimerHandle | None = None

    def ensure_running(self) -> None:
        if self.handle is None:
            self.handle = self.loop.call_later(self.interval, self._sweep)

    def _sweep(self) -> None:
        self.handle = None
        now = self.loop.time()
        for connection in list(self.connections):
            if isinstance(connection, BoundedHttpToolsProtocol):
                connection.check_deadlines(now)
        if self.connections:  # idle servers stop ticking; the next connection starts it again
            self.ensure_running()


_SWEEPERS: weakref.WeakKeyDictionary[ServerState, _Sweeper] = weakref.WeakKeyDictionary()


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header limits, read deadlines and a connection limit.

    Deadlines: the head's while a request's head arrives (from accept for a connection's first
    request, from the first byte for a kept-alive one), then the body's (total and idle) while its body
    arrives; none while the application answers or the connection idles between requests (uvicorn's
    keep-alive timer rules there). The server's :class:`_Sweeper` enforces them.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = config.limits if isinstance(config, BoundedConfig) else ServerLimits.defaults()
        self.reading_head = True
        self.head_bytes = 0  # read while the head is incomplete: bounds a head that never ends
        self.head_fields = 0
        self.head_size = 0  # of the parsed request line and fields: bounds a head read in one go
        self.head_deadline = 0.0  # 0: not timing a head
        self.body_deadline = 0.0  # 0: not timing a body
        self.body_seen = 0.0

    # Connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            _count("max_connections")
            response = _answer(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "too many connections, retry later",
                self.server_state.default_headers,
                b"retry-after: %d\r\n" % self.limits.retry_after_seconds,
            )
            _Closing(transport, response, self.loop)
            return
        super().connection_made(transport)
        # A new connection gets header_timeout for its first request's head, from accept: one that
        # connects and sends nothing is dropped too.
        self.head_deadline = self.loop.time() + self.limits.header_timeout_seconds
        sweeper = _SWEEPERS.get(self.server_state)
        if sweeper is None:
            shortest = min(
                self.limits.header_timeout_seconds,
                self.limits.body_timeout_seconds,
                self.limits.body_idle_timeout_seconds,
            )
            sweeper = _Sweeper(self.loop, self.connections, interval=min(1.0, max(0.02, shortest / 10)))
            _SWEEPERS[self.server_state] = sweeper
        sweeper.ensure_running()

    def data_received(self, data: bytes) -> None:
        # uvicorn's data_received, but a header limit answers 431 instead of the parser error's 400.
        self._unset_keepalive_if_required()
        if self.reading_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, _HeadTooLarge):
                self._drop(cause.reason, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, cause.text)
            else:
                # uvicorn warns for each; a flood of them would fill the log, so they are counted.
                self._drop("invalid_request", HTTPStatus.BAD_REQUEST, "invalid HTTP request")
            return
        if self.reading_head and self.head_bytes > self.limits.max_header_bytes:
            # The head is still incomplete and already too large: httptools would buffer it all.
            self._drop("max_header_bytes", HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, self._too_large())

    def _too_large(self) -> str:
        return f"request line and headers exceed {self.limits.max_header_bytes} bytes"

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.reading_head = True
        self.head_fields = 0
        self.head_size = 0
        if not self.head_deadline:  # a kept-alive connection: the head's clock starts now
            self.head_deadline = self.loop.time() + self.limits.header_timeout_seconds

    def on_url(self, url: bytes) -> None:
        self.head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # A head that arrived whole in one read is measured here, field by field (the count of bytes
        # read in data_received catches one that never ends).
        self.head_fields += 1
        self.head_size += len(name) + len(value) + 4
        if self.head_fields > self.limits.max_headers:
            raise _HeadTooLarge("max_headers", f"more than {self.limits.max_headers} header fields")
        if self.head_size > self.limits.max_header_bytes:
            raise _HeadTooLarge("max_header_bytes", self._too_large())
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self.head_size > self.limits.max_header_bytes:  # a long request line and no header
            raise _HeadTooLarge("max_header_bytes", self._too_large())
        self.reading_head = False
        self.head_deadline = 0.0
        now = self.loop.time()
        self.body_deadline = now + self.limits.body_timeout_seconds
        self.body_seen = now
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self.body_seen = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self.body_deadline = 0.0
        self.head_bytes = 0
        super().on_message_complete()

    # Deadlines

    def check_deadlines(self, now: float) -> None:
        """Drop the connection if its head or body is late (called by the sweeper)."""
        if self.head_deadline and now >= self.head_deadline:
            if self.head_bytes == 0 and self.cycle is None:
                _count("idle_connection")  # connected and never sent a byte: nobody to answer
                self.head_deadline = 0.0
                self.transport.close()
                return
            self._drop("header_timeout", HTTPStatus.REQUEST_TIMEOUT, "request head not received in time")
        elif self.body_deadline:
            if self.flow.read_paused:
                # uvicorn stopped reading (the application has not taken the body yet, or a pipelined
                # request waits for the one before): not the client's fault, so its clocks restart.
                self.body_seen = now
                self.body_deadline = now + self.limits.body_timeout_seconds
                return
            if now >= self.body_deadline:
                self._drop("body_timeout", HTTPStatus.REQUEST_TIMEOUT, "request body not received in time")
            elif now - self.body_seen >= self.limits.body_idle_timeout_seconds:
                self._drop("body_idle_timeout", HTTPStatus.REQUEST_TIMEOUT, "request body stalled")

    def _drop(self, reason: str, status: HTTPStatus, text: str) -> None:
        """Answer ``status`` where no answer has started, and end the connection."""
        _count(reason)
        self.head_deadline = self.body_deadline = 0.0
        cycle = self.cycle
        if self.reading_head:  # between requests: answer unless the previous answer is still going out
            answer_now = cycle is None or cycle.response_complete
        else:  # in a body: the application is waiting for it and has not answered yet
            answer_now = cycle is not None and not cycle.response_started
        answer = _answer(status, text, self.server_state.default_headers) if answer_now else b""
        transport = self.transport
        # uvicorn forgets the connection: the application sees http.disconnect, its answer goes nowhere.
        self._unset_keepalive_if_required()
        super().connection_lost(ConnectionAbortedError("ended by the server"))
        _Closing(transport, answer, self.loop)


class BoundedConfig(uvicorn.Config):
    """``uvicorn.Config`` that runs :class:`BoundedHttpToolsProtocol` with ``limits``.

    A module-level class, so uvicorn's worker processes (which receive the config pickled) get it too.
    """

    def __init__(self, app: Any, limits: ServerLimits, **options: Any) -> None:
        super().__init__(app, http=BoundedHttpToolsProtocol, ws="none", **options)
        self.limits = limits


def run(app: Any, limits: ServerLimits, **options: Any) -> None:
    """``uvicorn.run`` with the limits: one process, or ``workers`` processes for an import string."""
    config = BoundedConfig(app, limits, **options)
    if config.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
