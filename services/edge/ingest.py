"""The webhook hot path: ``POST /webhooks/{provider}`` as a plain ASGI endpoint.

Starlette routes to it, but it reads the body and answers on the ASGI messages themselves: at
thousands of webhooks a second, Starlette's Request/Response objects were a fifth of the edge's CPU.
The order of the checks is the order of their cost: unknown provider, admission, content type, size
(while reading), signature, then the Kafka write.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry.trace import SpanKind

from schemas.envelope import WebhookEnvelope
from services.config import BreakwaterSettings
from services.edge.admission import Admission
from services.edge.publisher import Publisher
from services.edge.verifiers import Verifier
from services.errors import (
    BreakwaterError,
    MalformedRequest,
    PayloadTooLarge,
    RejectedRequest,
    UnknownProvider,
    UnsupportedMediaType,
)
from services.telemetry import HEADER_GETTER, PROPAGATOR, Telemetry, child_traceparent, current_traceparent

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ClientGone(BreakwaterError):
    """The client disconnected before its body arrived: there is no one to answer."""


async def read_body(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes (never read whole first)."""
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise MalformedRequest("Content-Length is not a number")
        if int(declared) > limit:
            raise PayloadTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


@dataclass
class Edge:
    """What a request needs: verifiers by provider, the admission buckets and the publisher."""

    settings: BreakwaterSettings
    verifiers: Mapping[str, Verifier]
    admission: Admission
    publisher: Publisher

    async def ingest(
        self, provider: str, headers: Mapping[str, str], receive: Receive, traceparent: str | None = None
    ) -> list[WebhookEnvelope]:
        verifier = self.verifiers.get(provider)
        if verifier is None:
            raise UnknownProvider(f"no provider named {provider!r} is configured")
        await self.admission.admit(provider)
        content_type = headers.get("content-type", "")
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type not in verifier.content_types:
            accepted = ", ".join(sorted(verifier.content_types))
            raise UnsupportedMediaType(f"{provider} sends {accepted}, not {media_type or 'no content type'}")
        body = await read_body(receive, headers, self.settings.edge.max_body_bytes)
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


async def send_json(send: Send, status: int, body: object, headers: Mapping[str, str] | None = None) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class WebhookEndpoint:
    """ASGI app for ``POST /webhooks/{provider}``: 202 with ids once Kafka acknowledged, else the refusal."""

    def __init__(self, edge: Edge, telemetry: Telemetry) -> None:
        self.edge = edge
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        provider = scope["path_params"]["provider"]
        label = provider if provider in self.edge.verifiers else "unknown"  # bounded label values
        self.telemetry.edge.received.add(1, label)
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        if not self.telemetry.exports_traces:
            traceparent = child_traceparent(headers.get("traceparent"))
            await self._answer(provider, label, headers, receive, send, traceparent, started)
            return
        parent = PROPAGATOR.extract(headers, getter=HEADER_GETTER)
        with self.telemetry.tracer.start_as_current_span(
            "webhook receive", context=parent, kind=SpanKind.SERVER, attributes={"breakwater.provider": label}
        ) as span:
            status = await self._answer(
                provider, label, headers, receive, send, current_traceparent(), started
            )
            span.set_attribute("http.response.status_code", status)

    async def _answer(
        self,
        provider: str,
        label: str,
        headers: Mapping[str, str],
        receive: Receive,
        send: Send,
        traceparent: str | None,
        started: float,
    ) -> int:
        measures = self.telemetry.edge
        try:
            envelopes = await self.edge.ingest(provider, headers, receive, traceparent)
        except ClientGone:
            return 499
        except RejectedRequest as error:
            measures.rejected.add(1, label, error.code)
            measures.accept_latency.record(time.perf_counter() - started, {"outcome": error.code})
            level = logging.WARNING if error.status >= 500 else logging.INFO
            details = {"provider": label, "reason": error.code, "detail": error.message}
            log.log(level, "webhook refused", extra=details)
            extra = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
            await send_json(send, error.status, {"error": error.code, "message": error.message}, extra)
            return error.status
        measures.accepted.add(len(envelopes), label)
        measures.accept_latency.record(time.perf_counter() - started, {"outcome": "accepted"})
        if log.isEnabledFor(logging.DEBUG):
            for envelope in envelopes:
                fields = {"envelope_id": envelope.id, "event_id": envelope.event_id, "provider": label}
                log.debug("webhook accepted", extra=fields)
        ids, event_ids = [e.id for e in envelopes], [e.event_id for e in envelopes]
        await send_json(send, 202, {"status": "accepted", "ids": ids, "event_ids": event_ids})
        return 202
