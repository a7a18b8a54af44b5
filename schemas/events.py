"""The normalized event record on ``webhooks.events``: what downstream consumers read.

It drops what only the pipeline needs (signature headers, attempts, error history) and parses a JSON
body once, so consumers in any language read one documented shape (``schemas/jsonschema/event-record.json``).
Key on Kafka: ``{provider}:{event_id}``, the same key as the envelope.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import WebhookEnvelope
from schemas.payload import MalformedPayload, parse_json

__all__ = [
    "EVENT_SCHEMA_VERSION",
    "EventRecord",
    "MalformedPayload",
    "event_record",
    "event_record_json",
    "is_json",
]

EVENT_SCHEMA_VERSION: Literal[1] = 1


class EventRecord(BaseModel):
    """One deduplicated provider event."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    schema_version: Literal[1] = EVENT_SCHEMA_VERSION
    id: str = Field(description="the envelope id assigned by the edge (UUIDv7)")
    key: str = Field(description="provider:event_id, the dedup key")
    provider: str
    provider_kind: str
    event_id: str
    event_type: str
    received_at: datetime
    occurred_at: datetime | None = None
    content_type: str
    data: Any = Field(default=None, description="the parsed body when it is JSON")
    raw_body: bytes | None = Field(default=None, description="the body bytes when it is not JSON (base64)")


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _fields(envelope: WebhookEnvelope) -> dict[str, Any]:
    """EventRecord's fields in declaration order; :class:`MalformedPayload` if a JSON body does not parse."""
    data: Any = None
    raw: bytes | None = envelope.body
    if is_json(envelope.content_type):
        try:
            data = parse_json(envelope.body)  # the edge's parser: what it accepted parses here
        except MalformedPayload as exc:
            raise MalformedPayload(f"body is not valid JSON: {exc}") from exc
        raw = None
    return {
        "schema_version": EVENT_SCHEMA_VERSION,
        "id": envelope.id,
        "key": envelope.key,
        "provider": envelope.provider,
        "provider_kind": envelope.provider_kind,
        "event_id": envelope.event_id,
        "event_type": envelope.event_type,
        "received_at": envelope.received_at,
        "occurred_at": envelope.occurred_at,
        "content_type": envelope.content_type,
        "data": data,
        "raw_body": raw,
    }


def event_record(envelope: WebhookEnvelope) -> EventRecord:
    """Normalize ``envelope``; raises :class:`MalformedPayload` when a JSON body does not parse."""
    return EventRecord.model_validate(_fields(envelope))


def event_record_json(envelope: WebhookEnvelope) -> bytes:
    """The JSON of :func:`event_record`, byte for byte, without building the model.

    The dispatch hot path: the envelope is already validated, and building a model only to serialize
    it cost more than the rest of dispatch together. ``tests/unit/streams`` checks both agree.
    """
    return pydantic_core.to_json(_fields(envelope), bytes_mode="base64")
