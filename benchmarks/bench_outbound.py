"""What the outbound client costs per call, against a bare httpx call to the same local server.

    .venv/bin/python -m benchmarks.bench_outbound [--calls 1000] [--rounds 10] [--concurrency 1]

The server (uvicorn + httptools, a raw ASGI app answering ``200 ok``) runs in a child process, so it
does not share the client's interpreter lock. Bare httpx and :class:`APIClient` (limiter, breaker,
retry loop, request id, error mapping all active; the rate set high enough never to wait) take turns
in each round (alternating who goes first); the figures are medians over rounds. A second run swaps the
server for httpx.MockTransport: the same comparison without I/O, i.e. the pure Python cost of each side.
Prints, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from benchmarks.figures import record
from services.flood.shutdown import SigtermUnwinds
from services.outbound.client import APIClient
from services.outbound.config import APISettings


async def _ok_app(
    scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Callable[..., Any]
) -> None:
    if scope["type"] != "http":
        return
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _serve(sock: socket.socket) -> None:
    import uvicorn

    config = uvicorn.Config(
        _ok_app,
        lifespan="off",
        log_level="warning",
        access_log=False,
        http="httptools",
        ws="none",
        loop="uvloop",
    )
    uvicorn.Server(config).run(sockets=[sock])


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


async def _timed(call: Callable[[], Awaitable[Any]], calls: int, concurrency: int) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) per call, ``calls`` calls with ``concurrency`` in flight.

    CPU time counts only what the calling side spends, so it holds steady when other processes load
    the machine; wall time is what a caller waits.
    """
    per_worker = calls // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            await call()

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    done = per_worker * concurrency
    return (time.perf_counter() - wall) / done, (time.process_time() - cpu) / done


def _ok(_request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=b"ok")


async def run(url: str, calls: int, rounds: int, concurrency: int, *, in_process: bool = False) -> None:
    """Bare httpx against APIClient; ``in_process`` swaps the server for httpx.MockTransport (no I/O),
    which leaves only what each side spends in Python: the client's own overhead, free of network noise."""
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    transport = httpx.MockTransport(_ok) if in_process else None
    settings = APISettings.model_validate(
        {
            "base_url": url,
            "pool": {"max_connections": 100, "max_keepalive_connections": 100},
            "rate_limit": {"start": 1e7, "max": 1e7, "burst": 100_000},
            "retry": {"max_attempts": 3},
        }
    )
    bare_times: list[tuple[float, float]] = []
    client_times: list[tuple[float, float]] = []
    bare_client = httpx.AsyncClient(base_url=url, limits=limits, transport=transport)
    api_client = APIClient("bench", settings, transport=transport)
    async with bare_client as bare, api_client as client:

        async def bare_call() -> None:
            response = await bare.get("/ok")
            response.raise_for_status()

        async def client_call() -> None:
            await client.request("GET", "/ok")

        for _ in range(2):  # warm up pools, caches and the JIT-less interpreter alike
            await _timed(bare_call, 200, concurrency)
            await _timed(client_call, 200, concurrency)
        for round_ in range(rounds):  # alternate who goes first, so drift in machine load hits both alike
            if round_ % 2:
                client_times.append(await _timed(client_call, calls, concurrency))
                bare_times.append(await _timed(bare_call, calls, concurrency))
            else:
                bare_times.append(await _timed(bare_call, calls, concurrency))
                client_times.append(await _timed(client_call, calls, concurrency))
    where = "in process (httpx.MockTransport)" if in_process else f"local server {url}"
    print(f"{where}: {calls} calls per round, {rounds} rounds, concurrency {concurrency}")
    for label, index in (("wall", 0), ("cpu ", 1)):
        bare_s = statistics.median(t[index] for t in bare_times)
        client_s = statistics.median(t[index] for t in client_times)
        if not in_process and index == 0:
            record("outbound", bare_us=round(bare_s * 1e6, 1), client_us=round(client_s * 1e6, 1))
        print(
            f"  {label}  bare httpx {bare_s * 1e6:7.1f} us/call   APIClient {client_s * 1e6:7.1f} us/call"
            f"   overhead {(client_s - bare_s) * 1e6:6.1f} us   ratio {client_s / bare_s:5.3f}x (target 1.2x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    sock = _listening_socket()
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(sock,), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        asyncio.run(run(url, args.calls, args.rounds, args.concurrency))
        print()
        asyncio.run(run(url, args.calls, args.rounds, args.concurrency, in_process=True))
    finally:
        server.terminate()
        server.join(timeout=5)
        sock.close()


if __name__ == "__main__":
    with SigtermUnwinds():  # a ``kill`` still runs the finally blocks that stop the server
        main()
