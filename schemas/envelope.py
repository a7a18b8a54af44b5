"""The wire contract between the edge and everything after it.

A :class:`WebhookEnvelope` is one provider event exactly as the edge accepted it: the raw body bytes
(base64 in JSON), the headers needed to re-verify the provider's signature, and the bookkeeping the
pipeline adds on the way (attempts and an error history). It is JSON on the wire so that any consumer,
in any language, can read it with the committed JSON Schema (``schemas/jsonschema/``).
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal[1] = 1


def new_envelope_id() -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds then randomness, so ids sort by time."""
    millis = time.time_ns() // 1_000_000
    value = (millis & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def envelope_id_time(envelope_id: str) -> datetime:
    """When the edge assigned ``envelope_id`` (millisecond precision)."""
    millis = uuid.UUID(envelope_id).int >> 80
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


class DeliveryError(BaseModel):
    """One failed attempt, kept in the envelope's history."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: datetime
    stage: str = Field(description="where it failed: dispatch, retry, dedup...")
    destination: str | None = None
    error_class: str = Field(description="e.g. timeout, http_500, http_429, connect, bad_signature")
    message: str
    retryable: bool
    attempt: int = Field(ge=0)


class WebhookEnvelope(BaseModel):
    """One accepted provider event. Key on Kafka: ``f"{provider}:{event_id}"`` (see :attr:`key`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    schema_version: Literal[1] = SCHEMA_VERSION
    id: str = Field(default_factory=new_envelope_id, description="edge-assigned UUIDv7, time-sortable")
    provider: str = Field(description="the configured provider name (the URL path segment)")
    provider_kind: str = Field(description="the signature scheme: stripe, github, shopify, ...")
    event_id: str = Field(min_length=1, description="the provider's own event id; the dedup key")
    event_type: str
    received_at: datetime
    occurred_at: datetime | None = None
    body: bytes = Field(description="the body bytes exactly as received, base64 in JSON")
    content_type: str
    headers: dict[str, str] = Field(
        default_factory=dict, description="lower-cased headers needed to re-verify the provider signature"
    )
    batch_index: int | None = Field(default=None, description="position in a batched delivery (SendGrid)")
    edge_instance: str
    attempt: int = Field(default=0, ge=0, description="delivery attempts made so far")
    errors: list[DeliveryError] = Field(default_factory=list)
    trace_parent: str | None = Field(default=None, description="W3C traceparent of the edge request")

    @property
    def key(self) -> str:
        return envelope_key(self.provider, self.event_id)


def envelope_key(provider: str, event_id: str) -> str:
    return f"{provider}:{event_id}"
