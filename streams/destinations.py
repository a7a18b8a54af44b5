"""Destinations: the HTTP delivery seam.

Every delivery to a destination with ``signing_secrets`` is signed the Standard Webhooks way
(:mod:`services.standard_webhooks`): ``webhook-id`` is derived from the provider, the event id and the
destination's name (:func:`webhook_id`), so it is the same on every retry and replay of that event to
that destination and the destination can deduplicate on it; ``webhook-timestamp`` is the send time,
so each attempt is signed afresh and passes the receiver's freshness check.

Each HTTP destination is called through its own outbound :class:`~services.outbound.client.APIClient`,
so its calls feed a circuit breaker and (when configured) an adaptive rate limiter. The client's errors
are :class:`~services.errors.DeliveryFailed` already, named the way dispatch records them
(``error_class``: ``http_<status>``, ``timeout``, ``connect``, ``circuit_open``), so they pass through
as they are. Dispatch depends only on the :class:`Deliverer` protocol, so unit tests fake it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
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
from services.standard_webhooks import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    decode_secret,
    signed_headers,
)
from services.telemetry import child_traceparent

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 429, *range(500, 600)})
"""What the pipeline has always retried: 408, 429 and every 5xx; other 4xx dead-letter at once."""


def header_safe(value: str) -> str:
    """``value`` as an HTTP header value: percent-encoded (UTF-8) when it is not printable ASCII.

    Event types come from the provider's body ("café"); httpx refuses a non-ASCII header value, which
    made the delivery raise for every attempt.
    """
    if value.isascii() and value.isprintable() and "%" not in value:
        return value
    # readable ASCII stays as it is; "%" itself is encoded, so ``unquote`` always gives the value back
    # (else "caf%C3%A9" and "café" would be sent alike)
    return quote(value, safe=":/@!$&'()*+,;=")


FORWARDED_PREFIX = "x-provider-"
"""A forwarded provider header whose name Breakwater sends itself travels under this prefix."""
STANDARD_HEADERS = frozenset({ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER})
RESERVED_HEADERS = frozenset(
    {
        *STANDARD_HEADERS,
        "host",
        "content-length",
        "content-type",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "authorization",
        "cookie",
        "idempotency-key",
        "traceparent",
        "tracestate",
    }
)
"""Headers a forwarded one must not stand in for: HTTP's own, and those Breakwater sends itself. An
envelope written by a gateway may carry any header, so one of these travels under the prefix."""


def webhook_id(provider: str, event_id: str, destination: str) -> str:
    """The ``webhook-id`` of one event's deliveries to one destination (by name): ``msg_`` + 32 hex.

    The same for every attempt, retry tier and replay, different per destination; a hash, so it is
    ASCII and short whatever the provider's event id holds.
    """
    identity = json.dumps([provider, event_id, destination]).encode()  # unambiguous, unlike a join
    return f"msg_{hashlib.sha256(identity).hexdigest()[:32]}"


class Deliverer(Protocol):
    async def deliver(self, envelope: WebhookEnvelope, destination: HttpDestination, *, name: str) -> None:
        """Deliver to the destination configured as ``name``. Return on 2xx; raise a
        :class:`~services.errors.RetryableError` or :class:`~services.errors.PermanentError`."""


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
    """POST the raw body with ``Idempotency-Key: {provider}:{event_id}``, one outbound client per destination,
    signed with the destination's ``signing_secrets`` (an unsigned one is warned about here, at start).

    Clients are keyed by the destination's settings (frozen, hashable), as dispatch hands us those;
    two destinations configured identically are the same endpoint and share a client and its breaker.
    ``transport`` is for unit tests (``httpx.MockTransport``).

    >>> async with OutboundDeliverer(settings.pipeline.destinations, lanes=2) as deliverer:  # doctest: +SKIP
    ...     await deliverer.deliver(envelope, destination, name="crm")
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
        self._keys: dict[HttpDestination, tuple[bytes, ...]] = {}
        for name, destination in destinations.items():
            if isinstance(destination, HttpDestination):
                self.client(destination, name)
                if not destination.signing_secrets:
                    log.warning(
                        "HTTP destination %r (%s) has no signing_secrets: its deliveries are unsigned, "
                        "so it cannot tell Breakwater from anyone else (required in prod)",
                        name,
                        destination.url,
                    )

    def client(self, destination: HttpDestination, name: str | None = None) -> APIClient:
        """The destination's client, created on first use (the breaker and limiter live as long as it)."""
        client = self._clients.get(destination)
        if client is None:
            settings = api_settings(destination, lanes=self._lanes)
            client = APIClient(name or destination.url, settings, transport=self._transport)
            self._clients[destination] = client
        return client

    def keys(self, destination: HttpDestination) -> tuple[bytes, ...]:
        """The destination's HMAC keys, decoded once (the settings checked that they decode)."""
        keys = self._keys.get(destination)
        if keys is None:
            keys = tuple(decode_secret(s.get_secret_value()) for s in destination.signing_secrets)
            self._keys[destination] = keys
        return keys

    def headers(self, envelope: WebhookEnvelope, destination: HttpDestination, name: str) -> dict[str, str]:
        """Every header of one attempt but the idempotency key (the outbound client adds that)."""
        headers = {
            "content-type": envelope.content_type,
            "x-breakwater-event-type": header_safe(envelope.event_type),
            "x-breakwater-envelope-id": header_safe(envelope.id),
            "x-breakwater-attempt": str(envelope.attempt + 1),
            # One webhook is one trace: the destination sees the edge's trace id, under a span of its own.
            "traceparent": child_traceparent(envelope.trace_parent),
        }
        keys = self.keys(destination)
        if keys:
            msg_id = webhook_id(envelope.provider, envelope.event_id, name)
            headers |= signed_headers(keys, msg_id, int(time.time()), envelope.body)
        if destination.forward_provider_signature and envelope.batch_index is None:
            for header, value in envelope.headers.items():  # what the verifier kept: its signature
                # webhook-* always mean Breakwater's own signature, signed or not: a Standard Webhooks
                # provider's are renamed, so no header means one thing here and another there
                lowered = header.lower()
                reserved = lowered in RESERVED_HEADERS or lowered.startswith("x-breakwater-")
                ours = reserved or lowered in headers
                headers[FORWARDED_PREFIX + lowered if ours else lowered] = header_safe(value)
        return headers

    async def deliver(self, envelope: WebhookEnvelope, destination: HttpDestination, *, name: str) -> None:
        headers = self.headers(envelope, destination, name)
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
