"""``/healthz``, ``/readyz`` and ``/metrics`` for processes that have no HTTP server of their own.

The worker runs this beside its loops so that an orchestrator can probe it and Prometheus can scrape
it like the edge. ``/healthz`` answers while the event loop turns; ``/readyz`` asks the process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.http_server import BoundedConfig, ServerLimits
from services.telemetry import prometheus_text

ReadyCheck = Callable[[], Awaitable[tuple[bool, dict[str, object]]]]


def create_probe_app(name: str, ready: ReadyCheck) -> Starlette:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive", "process": name})

    async def readyz(request: Request) -> Response:
        ok, details = await ready()
        return JSONResponse({"status": "ready" if ok else "not ready", **details}, 200 if ok else 503)

    async def metrics(request: Request) -> Response:
        body, content_type = prometheus_text()
        return Response(body, media_type=content_type)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )


@contextlib.asynccontextmanager
async def serving_probes(name: str, host: str, port: int, ready: ReadyCheck) -> AsyncIterator[uvicorn.Server]:
    """Serve the probes in the current event loop until the block ends."""
    config = BoundedConfig(
        create_probe_app(name, ready),
        ServerLimits.defaults(),  # Prometheus and kubelets send small heads; a stray client gets dropped
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    # The process owns SIGTERM/SIGINT (the worker drains its loops); uvicorn must not take them over.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve(), name=f"{name}-probes")
    try:
        yield server
    finally:
        server.should_exit = True
        await task
