"""A small HTTP/1.1 keep-alive load generator on raw asyncio streams.

httpx spends more CPU per request than the servers under test, which would measure the client; this
sends pre-rendered requests over ``connections`` keep-alive sockets and records each latency.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field


def render_post(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class LoadResult:
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def completed(self) -> int:
        return sum(self.statuses.values())

    @property
    def rate(self) -> float:
        return self.completed / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def run_load(
    host: str, port: int, requests: Sequence[bytes], *, connections: int, seconds: float, warmup: float = 1.0
) -> LoadResult:
    """Send ``requests`` round-robin for ``warmup`` + ``seconds``; only the measured part counts."""
    source = itertools.cycle(requests)
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    result = LoadResult(seconds=seconds)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (now := loop.time()) < stop_at:
                sent = time.perf_counter()
                writer.write(next(source))
                try:
                    status = await _read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    result.errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                if now >= measure_from:
                    result.latencies.append(time.perf_counter() - sent)
                    result.statuses[status] += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return result
