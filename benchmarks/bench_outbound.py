"""What the outbound client costs per call, against a bare httpx call to the same local server.

    .venv/bin/python benchmarks/bench_outbound.py [--calls 2000] [--rounds 5] [--concurrency 1]

The server (uvicorn + httptools, a raw ASGI app answering ``200 ok``) runs in a child process, so it
does not share the client's interpreter lock. Bare httpx and :class:`APIClient` (limiter, breaker,
retry loop, request id, error mapping all active; the rate set high enough never to wait) take turns
in each round over the same keep-alive pool; the figures are medians over rounds. Prints, asserts nothing.
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

from services.outbound import APIClient, APISettings


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


async def _timed(call: Callable[[], Awaitable[Any]], calls: int, concurrency: int) -> float:
    """Seconds per call, ``calls`` calls with ``concurrency`` in flight."""
    per_worker = calls // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.perf_counter() - started) / (per_worker * concurrency)


async def run(url: str, calls: int, rounds: int, concurrency: int) -> None:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    settings = APISettings.model_validate(
        {
            "base_url": url,
            "pool": {"max_connections": 100, "max_keepalive_connections": 100},
            "rate_limit": {"start": 1e7, "max": 1e7, "burst": 100_000},
            "retry": {"max_attempts": 3},
        }
    )
    bare_times: list[float] = []
    client_times: list[float] = []
    async with httpx.AsyncClient(base_url=url, limits=limits) as bare, APIClient("bench", settings) as client:

        async def bare_call() -> None:
            response = await bare.get("/ok")
            response.raise_for_status()

        async def client_call() -> None:
            await client.request("GET", "/ok")

        for _ in range(2):  # warm up pools, caches and the JIT-less interpreter alike
            await _timed(bare_call, 200, concurrency)
            await _timed(client_call, 200, concurrency)
        for _ in range(rounds):
            bare_times.append(await _timed(bare_call, calls, concurrency))
            client_times.append(await _timed(client_call, calls, concurrency))
    bare_s, client_s = statistics.median(bare_times), statistics.median(client_times)
    print(f"calls per round: {calls}, rounds: {rounds}, concurrency: {concurrency}")
    print(f"bare httpx   : {bare_s * 1e6:8.1f} us/call  ({1 / bare_s:8.0f} calls/s)")
    print(f"APIClient    : {client_s * 1e6:8.1f} us/call  ({1 / client_s:8.0f} calls/s)")
    print(f"overhead     : {(client_s - bare_s) * 1e6:8.1f} us/call")
    print(f"ratio        : {client_s / bare_s:8.3f}x  (target <= 1.2x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    sock = _listening_socket()
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(sock,), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        asyncio.run(run(url, args.calls, args.rounds, args.concurrency))
    finally:
        server.terminate()
        server.join(timeout=5)
        sock.close()


if __name__ == "__main__":
    main()
