"""A real local HTTP destination for the dispatch tests: a small ASGI app under uvicorn on a free port.

``behaviour(key, seen_before)`` decides each answer, as ``(status, headers)``; every request is logged
with its idempotency key, answer and time, so tests can count deliveries per key.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

Behaviour = Callable[[str, int], tuple[int, dict[str, str]]]


@dataclass
class Sink:
    behaviour: Behaviour
    delay: float = 0.0
    log: list[tuple[str, int, float]] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    """The headers of every request, in arrival order."""
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def statuses(self, key: str) -> list[int]:
        return [status for k, status, _ in self.log if k == key]

    def delivered(self) -> dict[str, int]:
        """Idempotency key -> number of 2xx answers."""
        counts: dict[str, int] = {}
        for key, status, _ in list(self.log):
            if 200 <= status < 300:
                counts[key] = counts.get(key, 0) + 1
        return counts

    def count(self, status: int) -> int:
        return sum(1 for _, s, _ in list(self.log) if s == status)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        key = headers.get("idempotency-key", "")
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            seen = sum(1 for k, _, _ in self.log if k == key)
            status, extra = self.behaviour(key, seen)
            self.log.append((key, status, time.monotonic()))
            self.requests.append(headers)
        raw = [(k.encode(), v.encode()) for k, v in extra.items()] + [(b"content-length", b"0")]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": b""})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_sink(sink: Sink) -> Iterator[Sink]:
    port = free_port()
    config = uvicorn.Config(sink, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the sink did not start")
        time.sleep(0.02)
    sink.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield sink
    finally:
        server.should_exit = True
        thread.join(10)
