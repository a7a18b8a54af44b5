"""SendGrid (Twilio) Event Webhook: ECDSA P-256 / SHA-256 over ``timestamp + body``.

Headers: ``X-Twilio-Email-Event-Webhook-Signature`` (base64 DER signature) and
``X-Twilio-Email-Event-Webhook-Timestamp``. The configured "secret" is the verification key SendGrid
shows: a base64 DER public key (PEM is accepted too). A POST carries a JSON array of events; each
becomes its own :class:`VerifiedEvent` (id ``sg_event_id``, type ``event``, time ``timestamp``).

Each event's body is that event re-serialized as compact JSON, not a slice of the raw bytes. The
SendGrid signature covers the whole array, so no single event can be re-verified against it anyway;
the trust chain after the edge is the edge's own envelope signature, one per event. The raw batch
is what this module verified; the envelope headers keep the signature and timestamp for the record.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.config import ConfigError, ProviderSettings
from services.edge.verifiers._common import (
    check_fresh,
    json_value,
    parse_unix_seconds,
    required_str,
    secret_values,
    signature_header,
    to_datetime,
)
from services.edge.verifiers.base import VerifiedEvent
from services.errors import BadSignature, MalformedRequest

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from SendGrid's base64 DER form (or PEM); ValueError otherwise."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise ValueError(f"not a base64 DER or PEM public key ({type(exc).__name__})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("not an ECDSA P-256 public key")
    return key


def signature_valid(key: ec.EllipticCurvePublicKey, timestamp: str, body: bytes, signature: bytes) -> bool:
    """True when ``signature`` (DER) is ``key``'s ECDSA-SHA256 signature of ``timestamp + body``."""
    try:
        key.verify(signature, timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def compact(event: object) -> bytes:
    """One event as compact JSON, keys in the order received, non-ASCII kept as UTF-8."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class SendGridVerifier:
    """Verifies SendGrid Event Webhook batches against any of the configured verification keys."""

    kind: str = "sendgrid"
    content_types: frozenset[str] = frozenset({"application/json"})
    envelope_headers: tuple[str, ...] = (SIGNATURE_HEADER.lower(), TIMESTAMP_HEADER.lower())

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        self.name = name
        self._keys: list[ec.EllipticCurvePublicKey] = []
        for index, secret in enumerate(secret_values(name, settings)):
            try:
                self._keys.append(load_public_key(secret))
            except ValueError as exc:
                raise ConfigError(f"providers.{name}.secrets[{index}]: {exc}") from None
        self._tolerance = settings.tolerance_seconds

    async def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> list[VerifiedEvent]:
        timestamp = signature_header(headers, TIMESTAMP_HEADER)
        try:
            signature = base64.b64decode(signature_header(headers, SIGNATURE_HEADER), validate=True)
        except (binascii.Error, ValueError):
            raise BadSignature(f"{SIGNATURE_HEADER} header is not base64") from None
        check_fresh(parse_unix_seconds(timestamp, f"{TIMESTAMP_HEADER} header"), now, self._tolerance)
        # Unlike an HMAC there is nothing secret to time here; still, try every key (rotation).
        if not any([signature_valid(key, timestamp, body, signature) for key in self._keys]):
            raise BadSignature(f"{SIGNATURE_HEADER} does not match a configured verification key")
        batch = json_value(body)
        if not isinstance(batch, list) or not batch:
            raise MalformedRequest("SendGrid body must be a non-empty JSON array of events")
        events: list[VerifiedEvent] = []
        for index, event in enumerate(batch):
            what = f"event {index}"
            if not isinstance(event, dict):
                raise MalformedRequest(f"{what} is not a JSON object")
            events.append(
                VerifiedEvent(
                    event_id=required_str(event, "sg_event_id", what),
                    event_type=required_str(event, "event", what),
                    occurred_at=to_datetime(event.get("timestamp")),
                    body=compact(event),
                    batch_index=index,
                )
            )
        return events
