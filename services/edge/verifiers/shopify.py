"""Shopify: ``X-Shopify-Hmac-Sha256``, base64 HMAC-SHA256 of the raw body with the app's secret.

Id, topic and time travel in headers: ``X-Shopify-Webhook-Id`` (older deliveries only carry
``X-Shopify-Event-Id``), ``X-Shopify-Topic`` and ``X-Shopify-Triggered-At``. The time is not
signed and stays the same across Shopify's retries (up to 48 h), so it is recorded, never used as
a freshness check. The body must still be JSON: everything downstream reads it as such.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from services.config import ProviderSettings
from services.edge.verifiers._common import (
    any_match,
    id_header,
    json_value,
    secret_values,
    signature_header,
    to_datetime,
)
from services.edge.verifiers.base import VerifiedEvent
from services.errors import BadSignature

HEADER = "X-Shopify-Hmac-Sha256"


class ShopifyVerifier:
    """Verifies Shopify webhook HMACs against any of the configured app secrets."""

    kind: str = "shopify"
    content_types: frozenset[str] = frozenset({"application/json"})
    envelope_headers: tuple[str, ...] = (
        "x-shopify-hmac-sha256",
        "x-shopify-webhook-id",
        "x-shopify-event-id",
        "x-shopify-topic",
        "x-shopify-triggered-at",
        "x-shopify-shop-domain",
        "x-shopify-api-version",
    )

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        self.name = name
        self._keys = [secret.encode("utf-8") for secret in secret_values(name, settings)]

    async def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> list[VerifiedEvent]:
        try:
            received = base64.b64decode(signature_header(headers, HEADER), validate=True)
        except (binascii.Error, ValueError):
            raise BadSignature(f"{HEADER} header is not base64") from None
        expected = [hmac.new(key, body, hashlib.sha256).digest() for key in self._keys]
        if not any_match(expected, [received]):
            raise BadSignature(f"{HEADER} does not match a configured secret")
        event_id = id_header(headers, "X-Shopify-Webhook-Id", "X-Shopify-Event-Id")
        topic = id_header(headers, "X-Shopify-Topic")
        json_value(body)
        occurred_at = to_datetime(headers.get("x-shopify-triggered-at", "").strip())
        return [VerifiedEvent(event_id=event_id, event_type=topic, occurred_at=occurred_at, body=body)]
