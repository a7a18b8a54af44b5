"""Destinations: the HTTP delivery seam.

Each HTTP destination is called through its own outbound :class:`~services.outbound.client.APIClient`,
so its calls feed a circuit breaker and (when configured) an adaptive rate limiter. The client's errors
are :class:`~services.errors.DeliveryFailed` already, named the way dispatch records them
(``error_class``: ``http_<status>``, ``timeout``, ``connect``, ``circuit_open``), so they pass through
as they are. Dispatch depends only on the :class:`Deliverer` protocol, so unit tests fake it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import quote

import httpx

from schemas.envelope import WebhookEnvelope
from services.config import Destination, HttpDestination
from services.outbound.client import APIClient
from services.outbound.config import APISettings, PoolSettings, RetrySettings, TimeoutSettings
from services.outbound.errors import NetworkError, PermanentStatus
from services.telemetry import child_traceparent

RETRYABLE_STATUSES = frozenset({408, 429, *range(500, 600)})
"""What the pipeline has always retried: 408, 429 and every 5xx; other 4xx dead-letter at once."""


def header_safe(value: str) -> str:
    """``value`` as an HTTP header value: percent-encoded (UTF-8) when it is not printable ASCII.

    Event types come from the provider's body ("café"); httpx refuses a non-ASCII header value, which
    made the delivery raise for every attempt.
    """
    if value.isascii() and value.isprintable():
        return value
    return quote(value, safe=":/@!$&'()*+,;=")  # readable ASCII stays as it is


class Deliverer(Protocol):
    async def deliver(self, envelope: WebhookEnvelope, destination: HttpDestination) -> None:
        """Return on 2xx; raise a :class:`~services.errors.RetryableError` or
        :class:`~services.errors.PermanentError`."""


def api_settings(destination: HttpDestination, *, lanes: int = 1) -> APISettings:
    """The outbound settings of one destination; the defaults (no breaker, no adaptive pacing) keep the
    pipeline's behaviour from before the outbound client.

    ``max_attempts=1``: each delivery is one HTTP call. The pipeline never retries inline: a failed call
    goes to a retry tier (a topic), so a record never blocks its partition, every attempt is in the
    envelope's history, and the breaker and limiter see each call once. ``lanes`` is the number of
    dispatch loops (one per provider) that each hold up to ``concurrency`` calls to this destination.
    """
    t = destination.timeout_seconds
    connections = destination.concurrency * lanes
    return APISettings(
        base_url=destination.url,
        timeouts=TimeoutSettings(connect=t, attempt=t, overall=t),
        pool=PoolSettings(max_connections=connections, max_keepalive_connections=connections),
        retry=RetrySettings(max_attempts=1, retryable_statuses=RETRYABLE_STATUSES),
        breaker=destination.breaker,
        rate_limit=destination.rate_limit,
    )


class OutboundDeliverer:
    """POST the raw body with ``Idempotency-Key: {provider}:{event_id}``, one outbound client per destination.

    Clients are keyed by the destination's settings (frozen, hashable), as dispatch hands us those;
    two destinations configured identically are the same endpoint and share a client and its breaker.
    ``transport`` is for unit tests (``httpx.MockTransport``).

    >>> async with OutboundDeliverer(settings.pipeline.destinations, lanes=2) as deliverer:  # doctest: +SKIP
    ...     await deliverer.deliver(envelope, destination)
    """

    def __init__(
        self,
        destinations: Mapping[str, Destination],
        *,
        lanes: int = 1,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._lanes = lanes
        self._transport = transport
        self._clients: dict[HttpDestination, APIClient] = {}
        for name, destination in destinations.items():
            if isinstance(destination, HttpDestination):
                self.client(destination, name)

    def client(self, destination: HttpDestination, name: str | None = None) -> APIClient:
        """The destination's client, created on first use (the breaker and limiter live as long as it)."""
        client = self._clients.get(destination)
        if client is None:
            settings = api_settings(destination, lanes=self._lanes)
            client = APIClient(name or destination.url, settings, transport=self._transport)
            self._clients[destination] = client
        return client

    async def deliver(self, envelope: WebhookEnvelope, destination: HttpDestination) -> None:
        headers = {
            "content-type": envelope.content_type,
            "x-breakwater-event-type": header_safe(envelope.event_type),
            "x-breakwater-envelope-id": header_safe(envelope.id),
            "x-breakwater-attempt": str(envelope.attempt + 1),
            # One webhook is one trace: the destination sees the edge's trace id, under a span of its own.
            "traceparent": child_traceparent(envelope.trace_parent),
        }
        client = self.client(destination)
        try:
            response = await client.request(
                "POST",
                destination.url,
                idempotency_key=header_safe(envelope.key),
                content=envelope.body,
                headers=headers,
            )
        except (
            httpx.HTTPError
        ) as exc:  # e.g. a body we cannot decode: a poison answer must not stop the worker
            raise NetworkError(f"{destination.url}: {type(exc).__name__} {exc}", kind="network") from exc
        if not 200 <= response.status_code < 300:  # the client returns 1xx-3xx; only 2xx is delivered
            raise PermanentStatus(
                f"POST {destination.url} answered {response.status_code}", response=response
            )

    async def aclose(self) -> None:
        """Close every client's connection pool (the worker does this when it stops)."""
        for client in self._clients.values():
            await client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
