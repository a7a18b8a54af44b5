"""Destinations: the HTTP delivery seam and how its failures are classified.

The outbound toolkit (``services/outbound``) will offer ``APIClient.request(...)`` raising
``RetryableError`` / ``PermanentError`` subclasses; until then :class:`HttpxDeliverer` does the same
over ``httpx.AsyncClient`` behind the :class:`Deliverer` protocol, so the switch is one class.
"""

from __future__ import annotations

import email.utils
import time
from typing import Protocol

import httpx

from schemas.envelope import WebhookEnvelope
from services.config import HttpDestination
from services.errors import PermanentError, RetryableError
from services.telemetry import child_traceparent


class RetryableDelivery(RetryableError):
    """Timeouts, connection errors, 5xx and 429; ``error_class`` goes into the envelope's history."""

    def __init__(self, error_class: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.error_class = error_class


class PermanentDelivery(PermanentError):
    """Other 4xx and payloads that cannot be delivered as they are."""

    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class


class Deliverer(Protocol):
    async def deliver(self, envelope: WebhookEnvelope, destination: HttpDestination) -> None:
        """Return on 2xx; raise :class:`RetryableDelivery` or :class:`PermanentDelivery`."""
        ...


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def classify(response: httpx.Response) -> None:
    """Raise the delivery error a non-2xx ``response`` means."""
    status = response.status_code
    if 200 <= status < 300:
        return
    message = f"{response.request.method} {response.request.url} answered {status}"
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise RetryableDelivery("http_429", message, retry_after=retry_after)
    if status >= 500 or status == 408:
        raise RetryableDelivery(f"http_{status}", message)
    raise PermanentDelivery(f"http_{status}", message)


class HttpxDeliverer:
    """POST the raw body with ``Idempotency-Key: {provider}:{event_id}``."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def deliver(self, envelope: WebhookEnvelope, destination: HttpDestination) -> None:
        headers = {
            "content-type": envelope.content_type,
            "idempotency-key": envelope.key,
            "x-breakwater-event-type": envelope.event_type,
            "x-breakwater-envelope-id": envelope.id,
            "x-breakwater-attempt": str(envelope.attempt + 1),
            # One webhook is one trace: the destination sees the edge's trace id, under a span of its own.
            "traceparent": child_traceparent(envelope.trace_parent),
        }
        try:
            response = await self._client.post(
                destination.url, content=envelope.body, headers=headers, timeout=destination.timeout_seconds
            )
        except httpx.TimeoutException as exc:
            raise RetryableDelivery("timeout", f"{destination.url}: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise RetryableDelivery("connect", f"{destination.url}: {type(exc).__name__} {exc}") from exc
        classify(response)
