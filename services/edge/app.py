"""The edge: verify, wrap, store, answer. Nothing else happens inline.

``POST /webhooks/{provider}`` (:mod:`services.edge.ingest`) answers 202 with the envelope ids only
after Kafka acknowledged every envelope. Refusals are small JSON bodies
``{"error": code, "message": ...}`` with the status the error class carries (see
:mod:`services.errors`); they never echo secrets or signatures.

    app = create_app(load_settings("deploy/local/breakwater.toml"))
    # uvicorn.run(app) -- or `breakwater edge`
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from schemas.signing import EnvelopeSigner
from services.config import BreakwaterSettings
from services.edge.admission import Admission
from services.edge.ingest import Edge, WebhookEndpoint
from services.edge.publisher import EnvelopeProducer, Publisher
from services.edge.verifiers import build_verifier
from services.telemetry import (
    prometheus_text,
    setup_telemetry,
)
from streams.topics import pipeline_topics


def create_app(
    settings: BreakwaterSettings,
    *,
    producer: EnvelopeProducer | None = None,
    http: httpx.AsyncClient | None = None,
) -> Starlette:
    """The edge ASGI app; the producer connects when the app starts (lifespan)."""
    producer = producer or EnvelopeProducer(
        settings.kafka,
        EnvelopeSigner.of(settings.signing),
        topic=pipeline_topics(settings).inbound,
        client_id=f"breakwater-edge-{settings.edge.instance}",
        linger_ms=settings.edge.linger_ms,
        request_timeout_ms=settings.kafka.request_timeout_ms,
    )
    http = http or httpx.AsyncClient(timeout=5.0)  # PayPal certificates only
    edge = Edge(
        settings=settings,
        verifiers={
            name: build_verifier(name=name, kind=settings.provider_kind(name), settings=provider, http=http)
            for name, provider in settings.providers.items()
        },
        admission=Admission({name: p.admission for name, p in settings.providers.items()}),
        publisher=Publisher(
            producer,
            timeout=settings.edge.produce_timeout_seconds,
            max_in_flight=settings.edge.max_in_flight,
            retry_after=settings.edge.retry_after_seconds,
        ),
    )

    telemetry = setup_telemetry(settings.telemetry, "edge")

    async def metrics_endpoint(request: Request) -> Response:
        body, content_type = prometheus_text()
        return Response(body, media_type=content_type)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive", "instance": settings.edge.instance})

    async def readyz(request: Request) -> Response:
        ready = await edge.publisher.ready()
        body = {"status": "ready" if ready else "not ready", "kafka": "reachable" if ready else "unreachable"}
        return JSONResponse(body, 200 if ready else 503)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        edge.publisher.start()
        try:
            yield
        finally:
            await edge.publisher.stop()
            await http.aclose()

    webhook = WebhookEndpoint(edge, telemetry)
    app = Starlette(
        routes=[
            Route("/webhooks/{provider}", webhook, methods=["POST"]),
            # A URL pasted into a provider's dashboard with a trailing slash is the same endpoint:
            # providers do not follow a redirect on POST, so Starlette's 307 lost those webhooks.
            Route("/webhooks/{provider}/", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # any other path: a plain 404, never a redirect to follow
    app.state.edge = edge
    return app


def app_from_environment() -> Starlette:
    """The edge app from ``BREAKWATER_*`` and ``BREAKWATER_CONFIG`` (each process of ``edge --processes``)."""
    from services.config import load_settings
    from services.runtime import freeze_startup_objects
    from services.telemetry import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.telemetry.log_format)
    app = create_app(settings)
    freeze_startup_objects()
    return app
