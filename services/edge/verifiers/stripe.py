"""Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>][,v0=<hex>]``.

Stripe signs ``f"{t}.{body}"`` with HMAC-SHA256 and the endpoint secret (the whole ``whsec_...``
string is the key). Several ``v1`` entries appear while Stripe itself rolls a secret; ``v0`` is a
test-mode scheme we ignore. Event id, type and time come from the body.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from services.config import ProviderSettings
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

HEADER = "Stripe-Signature"


def parse_header(value: str) -> tuple[str, list[bytes]]:
    """Split the header into the timestamp (as sent) and the v1 signatures (as ASCII hex bytes)."""
    timestamp: str | None = None
    signatures: list[bytes] = []
    for item in value.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            raise BadSignature(f"{HEADER} header is malformed: an item has no '='")
        if key == "t":
            if timestamp is not None:
                raise BadSignature(f"{HEADER} header has more than one timestamp")
            timestamp = val
        elif key == "v1":
            signatures.append(val.strip().lower().encode("utf-8"))
    if timestamp is None:
        raise BadSignature(f"{HEADER} header has no timestamp (t=)")
    if not signatures:
        raise BadSignature(f"{HEADER} header has no v1 signature")
    return timestamp, signatures


class StripeVerifier:
    """Verifies Stripe webhook signatures against any of the configured endpoint secrets."""

    kind: str = "stripe"
    content_types: frozenset[str] = frozenset({"application/json"})
    envelope_headers: tuple[str, ...] = ("stripe-signature",)

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        self.name = name
        self._keys = [secret.encode("utf-8") for secret in secret_values(name, settings)]
        self._tolerance = settings.tolerance_seconds

    async def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> list[VerifiedEvent]:
        timestamp, received = parse_header(signature_header(headers, HEADER))
        check_fresh(parse_unix_seconds(timestamp, f"{HEADER} t"), now, self._tolerance)
        signed = timestamp.encode("ascii") + b"." + body
        expected = [hmac.new(key, signed, hashlib.sha256).hexdigest().encode("ascii") for key in self._keys]
        if not any_match(expected, received):
            raise BadSignature(f"no {HEADER} v1 signature matches a configured secret")
        event = json_object(body)
        return [
            VerifiedEvent(
                event_id=required_str(event, "id"),
                event_type=required_str(event, "type"),
                occurred_at=to_datetime(event.get("created")),
                body=body,
            )
        ]
