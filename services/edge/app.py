"""The edge: verify, wrap, store, answer. Nothing else happens inline.

``POST /webhooks/{provider}`` answers 202 with the envelope ids only after Kafka acknowledged every
envelope. Refusals are small JSON bodies ``{"error": code, "message": ...}`` with the status the
error class carries (see :mod:`services.errors`); they never echo secrets or signatures.

    app = create_app(load_settings("deploy/local/breakwater.toml"))
    # uvicorn.run(app) -- or `breakwater edge`
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from schemas.envelope import WebhookEnvelope
from schemas.producer import EnvelopeProducer
from schemas.signing import EnvelopeSigner
from schemas.topics import INBOUND
from services.config import BreakwaterSettings
from services.edge.admission import Admission
from services.edge.publisher import Publisher
from services.edge.verifiers import Verifier, build_verifier
from services.errors import (
    MalformedRequest,
    PayloadTooLarge,
    RejectedRequest,
    UnknownProvider,
    UnsupportedMediaType,
)
from services.telemetry import (
    HEADER_GETTER,
    PROPAGATOR,
    child_traceparent,
    current_traceparent,
    prometheus_text,
    setup_telemetry,
)

log = logging.getLogger(__name__)


@dataclass
class Edge:
    """What a request needs: verifiers by provider, the admission buckets and the publisher."""

    settings: BreakwaterSettings
    verifiers: Mapping[str, Verifier]
    admission: Admission
    publisher: Publisher

    async def ingest(
        self, provider: str, request: Request, traceparent: str | None = None
    ) -> list[WebhookEnvelope]:
        verifier = self.verifiers.get(provider)
        if verifier is None:
            raise UnknownProvider(f"no provider named {provider!r} is configured")
        await self.admission.admit(provider)
        content_type = request.headers.get("content-type", "")
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type not in verifier.content_types:
            accepted = ", ".join(sorted(verifier.content_types))
            raise UnsupportedMediaType(f"{provider} sends {accepted}, not {media_type or 'no content type'}")
        body = await read_body(request, self.settings.edge.max_body_bytes)
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in request.scope["headers"]}
        events = await verifier.verify(body=body, headers=headers, now=time.time())
        if not events:
            raise MalformedRequest(f"the {provider} delivery holds no events")
        kept = {name: headers[name] for name in verifier.envelope_headers if name in headers}
        received_at = datetime.now(UTC)
        envelopes = [
            WebhookEnvelope(
                provider=provider,
                provider_kind=verifier.kind,
                event_id=event.event_id,
                event_type=event.event_type,
                received_at=received_at,
                occurred_at=event.occurred_at,
                body=event.body,
                content_type=content_type,
                headers=kept,
                batch_index=event.batch_index,
                edge_instance=self.settings.edge.instance,
                trace_parent=traceparent,
            )
            for event in events
        ]
        await self.publisher.publish(envelopes)
        return envelopes


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes (never read whole first)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise MalformedRequest("Content-Length is not a number")
        if int(declared) > limit:
            raise PayloadTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def error_response(error: RejectedRequest) -> JSONResponse:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return JSONResponse({"error": error.code, "message": error.message}, error.status, headers=headers)


def create_app(
    settings: BreakwaterSettings,
    *,
    producer: EnvelopeProducer | None = None,
    http: httpx.AsyncClient | None = None,
) -> Starlette:
    """The edge ASGI app; the producer connects when the app starts (lifespan)."""
    signer = EnvelopeSigner(
        keys={key_id: secret.get_secret_value().encode() for key_id, secret in settings.signing.keys.items()},
        active_key_id=settings.signing.active_key_id,
    )
    producer = producer or EnvelopeProducer(
        settings.kafka.servers,
        signer,
        topic=settings.topic(INBOUND),
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
    measures = telemetry.edge

    async def receive(request: Request) -> Response:
        started = time.perf_counter()
        provider = request.path_params["provider"]
        label = provider if provider in edge.verifiers else "unknown"  # bounded label values
        measures.received.add(1, label)
        if not telemetry.exports_traces:
            traceparent = child_traceparent(request.headers.get("traceparent"))
            return await answer(provider, label, request, traceparent, started)
        parent = PROPAGATOR.extract(request.headers, getter=HEADER_GETTER)
        with telemetry.tracer.start_as_current_span(
            "webhook receive", context=parent, kind=SpanKind.SERVER, attributes={"breakwater.provider": label}
        ) as span:
            response = await answer(provider, label, request, current_traceparent(), started)
            span.set_attribute("http.response.status_code", response.status_code)
            return response

    async def answer(
        provider: str, label: str, request: Request, traceparent: str | None, started: float
    ) -> Response:
        try:
            envelopes = await edge.ingest(provider, request, traceparent)
        except RejectedRequest as error:
            measures.rejected.add(1, label, error.code)
            measures.accept_latency.record(time.perf_counter() - started, {"outcome": error.code})
            level = logging.WARNING if error.status >= 500 else logging.INFO
            log.log(
                level,
                "webhook refused",
                extra={"provider": label, "reason": error.code, "detail": error.message},
            )
            return error_response(error)
        measures.accepted.add(len(envelopes), label)
        measures.accept_latency.record(time.perf_counter() - started, {"outcome": "accepted"})
        if log.isEnabledFor(logging.DEBUG):
            for envelope in envelopes:
                fields = {"envelope_id": envelope.id, "event_id": envelope.event_id, "provider": label}
                log.debug("webhook accepted", extra=fields)
        ids, event_ids = [e.id for e in envelopes], [e.event_id for e in envelopes]
        return JSONResponse({"status": "accepted", "ids": ids, "event_ids": event_ids}, 202)

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

    app = Starlette(
        routes=[
            Route("/webhooks/{provider}", receive, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.edge = edge
    return app


def app_from_environment() -> Starlette:
    """The edge app from ``BREAKWATER_*`` and ``BREAKWATER_CONFIG`` (each process of ``edge --processes``)."""
    from services.config import load_settings
    from services.telemetry import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.telemetry.log_format)
    return create_app(settings)
