"""A small HTTP/1.1 keep-alive load generator on raw asyncio streams.

httpx spends more CPU per request than the servers under test, which would measure the client; this
sends pre-rendered requests over ``connections`` keep-alive sockets and records each latency. The wire
format (request rendering, response parsing) is the storm's own, from :mod:`services.flood.loadgen`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.flood.loadgen import read_response, render_post

__all__ = ["LoadResult", "render_post", "run_load"]


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
                    status, _ = await read_response(reader)
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
