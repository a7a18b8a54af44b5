"""PayPal: RSA (``SHA256withRSA``) over ``transmission_id|transmission_time|webhook_id|crc32(body)``.

The five ``PAYPAL-*`` headers carry the transmission id and time, the base64 signature, the URL of
the signing certificate and the algorithm. ``webhook_id`` is the id PayPal gave the subscription
(from settings): it ties a delivery to *our* subscription, so a validly signed event meant for
someone else's webhook is refused. The CRC32 is the unsigned decimal of the raw body's CRC32.
Certificates come through :class:`CertificateCache` (allow-listed HTTPS hosts, cached, validity
checked). PayPal needs no shared secret: ``secrets`` from settings are not used.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Mapping

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from services.config import ConfigError, ProviderSettings
from services.edge.verifiers._common import (
    check_fresh,
    json_object,
    required_str,
    signature_header,
    to_datetime,
)
from services.edge.verifiers.base import VerifiedEvent
from services.edge.verifiers.paypal_certs import CertificateCache
from services.errors import BadSignature

ALGORITHM = "SHA256withRSA"
TRANSMISSION_ID = "PAYPAL-TRANSMISSION-ID"
TRANSMISSION_TIME = "PAYPAL-TRANSMISSION-TIME"
TRANSMISSION_SIG = "PAYPAL-TRANSMISSION-SIG"
CERT_URL = "PAYPAL-CERT-URL"
AUTH_ALGO = "PAYPAL-AUTH-ALGO"
TRANSMISSION_ID_SHAPE = re.compile(r"(?!\d+$)\w[\w.:-]{1,49}", re.ASCII)
"""As PayPal's API describes it (50 characters at most, not all digits); in practice a UUID."""
MIN_SIGNATURE_BYTES, MAX_SIGNATURE_BYTES = 128, 512  # RSA-1024 to RSA-4096


def signed_message(transmission_id: str, transmission_time: str, webhook_id: str, body: bytes) -> bytes:
    """The bytes PayPal signs for one delivery."""
    crc = zlib.crc32(body) & 0xFFFFFFFF
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{crc}".encode()


class PayPalVerifier:
    """Verifies PayPal webhook signatures with certificates fetched from allow-listed PayPal hosts."""

    kind: str = "paypal"
    content_types: frozenset[str] = frozenset({"application/json"})
    envelope_headers: tuple[str, ...] = (
        "paypal-transmission-id",
        "paypal-transmission-time",
        "paypal-transmission-sig",
        "paypal-cert-url",
        "paypal-auth-algo",
    )

    def __init__(
        self,
        name: str,
        settings: ProviderSettings,
        http: httpx.AsyncClient,
        *,
        cache_size: int = 32,
        cache_ttl_seconds: float = 3600.0,
        failure_ttl_seconds: float = 30.0,
        fetch_burst: int = 4,
        fetch_rate: float = 0.2,
    ) -> None:
        if not settings.webhook_id:
            raise ConfigError(f"providers.{name}.webhook_id: PayPal needs the webhook id PayPal assigned")
        if not settings.cert_hosts:
            raise ConfigError(f"providers.{name}.cert_hosts: needs at least one certificate host")
        self.name = name
        self._webhook_id = settings.webhook_id
        self._tolerance = settings.tolerance_seconds
        self.certs = CertificateCache(
            http,
            settings.cert_hosts,
            max_entries=cache_size,
            ttl_seconds=cache_ttl_seconds,
            failure_ttl_seconds=failure_ttl_seconds,
            fetch_burst=fetch_burst,
            fetch_rate=fetch_rate,
        )

    async def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> list[VerifiedEvent]:
        # Every header check that needs no certificate comes first, so a forged request rarely costs a
        # fetch: headers, their shapes, freshness, the URL. The body is read after the signature holds.
        transmission_id = signature_header(headers, TRANSMISSION_ID)
        if not TRANSMISSION_ID_SHAPE.fullmatch(transmission_id):
            raise BadSignature(f"{TRANSMISSION_ID} header is not a PayPal transmission id")
        transmission_time = signature_header(headers, TRANSMISSION_TIME)
        cert_url = signature_header(headers, CERT_URL)
        algorithm = signature_header(headers, AUTH_ALGO)
        if algorithm.lower() != ALGORITHM.lower():
            raise BadSignature(f"{AUTH_ALGO} {algorithm!r} is not supported, only {ALGORITHM}")
        encoded = signature_header(headers, TRANSMISSION_SIG)
        try:
            signature = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise BadSignature(f"{TRANSMISSION_SIG} header is not base64") from None
        if not MIN_SIGNATURE_BYTES <= len(signature) <= MAX_SIGNATURE_BYTES:
            raise BadSignature(f"{TRANSMISSION_SIG} is not the length of an RSA signature")
        sent_at = to_datetime(transmission_time)
        if sent_at is None:
            raise BadSignature(f"{TRANSMISSION_TIME} header is not an ISO 8601 time")
        check_fresh(sent_at.timestamp(), now, self._tolerance)
        self.certs.check_url(cert_url)
        key = await self.certs.public_key(cert_url, now)
        message = signed_message(transmission_id, transmission_time, self._webhook_id, body)
        try:
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise BadSignature(f"{TRANSMISSION_SIG} does not match the certificate and webhook id") from None
        # the body only once its signature holds: a forged request learns nothing of how it is parsed
        # (the fetch it may cost is cached by URL, remembered when it fails and token-bucketed)
        event = json_object(body)
        return [
            VerifiedEvent(
                event_id=required_str(event, "id"),
                event_type=required_str(event, "event_type"),
                occurred_at=to_datetime(event.get("create_time")),
                body=body,
            )
        ]
