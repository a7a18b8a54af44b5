"""Standard Webhooks (and Svix, its origin): ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

The signature is HMAC-SHA256 over ``f"{id}.{timestamp}.{body}"``, base64, listed as space-separated
``v1,<base64>`` entries (several while the sender rotates; other versions such as the asymmetric
``v1a`` are skipped). Secrets are ``whsec_<base64 key>``; the key is the decoded bytes (the signing
itself is :mod:`services.standard_webhooks`, shared with Breakwater's own deliveries). Svix sends
the same scheme under ``svix-id`` / ``svix-timestamp`` / ``svix-signature``; both are accepted.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from services.config import ConfigError, ProviderSettings
from services.edge.verifiers._common import (
    any_match,
    check_fresh,
    json_object,
    parse_unix_seconds,
    required_str,
    secret_values,
    signature_header,
    to_datetime,
)
from services.edge.verifiers.base import VerifiedEvent
from services.errors import BadSignature
from services.standard_webhooks import decode_secret, digest

PREFIXES = ("webhook", "svix")


def parse_signatures(value: str, header: str) -> list[bytes]:
    """The decoded ``v1`` signatures of a ``webhook-signature`` header."""
    signatures: list[bytes] = []
    for entry in value.split():
        version, sep, encoded = entry.partition(",")
        if not sep:
            raise BadSignature(f"{header} header is malformed: expected 'v1,<base64>' entries")
        if version != "v1":
            continue
        try:
            signatures.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            raise BadSignature(f"{header} header has a v1 signature that is not base64") from None
    if not signatures:
        raise BadSignature(f"{header} header has no v1 signature")
    return signatures


class StandardWebhooksVerifier:
    """Verifies Standard Webhooks / Svix signatures against any of the configured ``whsec_`` secrets."""

    kind: str = "standard"
    content_types: frozenset[str] = frozenset({"application/json"})
    envelope_headers: tuple[str, ...] = (
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "svix-id",
        "svix-timestamp",
        "svix-signature",
    )

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        self.name = name
        self._keys: list[bytes] = []
        for index, secret in enumerate(secret_values(name, settings)):
            try:
                self._keys.append(decode_secret(secret))
            except ValueError as exc:
                raise ConfigError(f"providers.{name}.secrets[{index}]: {exc}") from None
        self._tolerance = settings.tolerance_seconds

    async def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> list[VerifiedEvent]:
        # One family of headers, never a mix: webhook-* unless only svix-* is present.
        prefix = next((p for p in PREFIXES if f"{p}-signature" in headers), PREFIXES[0])
        msg_id = signature_header(headers, f"{prefix}-id")
        timestamp = signature_header(headers, f"{prefix}-timestamp")
        received = parse_signatures(signature_header(headers, f"{prefix}-signature"), f"{prefix}-signature")
        check_fresh(parse_unix_seconds(timestamp, f"{prefix}-timestamp header"), now, self._tolerance)
        expected = [digest(key, msg_id, timestamp, body) for key in self._keys]
        if not any_match(expected, received):
            raise BadSignature(f"no {prefix}-signature v1 signature matches a configured secret")
        event = json_object(body)
        return [
            VerifiedEvent(
                event_id=msg_id,
                event_type=required_str(event, "type"),
                occurred_at=to_datetime(event.get("timestamp")),
                body=body,
            )
        ]
