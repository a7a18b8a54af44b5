"""The record an envelope becomes on ``webhooks.inbound``: its key, value and signed headers.

What any producer of envelopes must write (the edge's :class:`services.edge.publisher.EnvelopeProducer`
writes it, and so can an upstream gateway that holds a signing key)::

    signer = EnvelopeSigner(keys={"k1": b"..."}, active_key_id="k1")
    key, value, headers = encode_envelope(envelope, signer)

An envelope over :data:`schemas.limits.ENVELOPE_MAX_BYTES` raises :class:`EnvelopeTooLarge`; it could
never be stored, so it is no "try again".
"""

from __future__ import annotations

from schemas.envelope import WebhookEnvelope
from schemas.headers import TRACEPARENT_HEADER
from schemas.limits import ENVELOPE_MAX_BYTES
from schemas.signing import EnvelopeSigner, KafkaHeaders
from services.errors import BreakwaterError


class EnvelopeTooLarge(BreakwaterError, ValueError):
    """A serialized envelope is over :data:`ENVELOPE_MAX_BYTES`: ``webhooks.inbound`` never stores it."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"the envelope would be {size} bytes, over the {ENVELOPE_MAX_BYTES}-byte limit "
            "of webhooks.inbound (the body is stored base64 inside it)"
        )
        self.size = size


def encode_envelope(envelope: WebhookEnvelope, signer: EnvelopeSigner) -> tuple[bytes, bytes, KafkaHeaders]:
    """Key, value and headers of the record for ``envelope``; :class:`EnvelopeTooLarge` if over the limit."""
    value = envelope.model_dump_json().encode()
    if len(value) > ENVELOPE_MAX_BYTES:
        raise EnvelopeTooLarge(len(value))
    headers = signer.sign(value)
    if envelope.trace_parent:
        headers.append((TRACEPARENT_HEADER, envelope.trace_parent.encode()))
    return envelope.key.encode(), value, headers
