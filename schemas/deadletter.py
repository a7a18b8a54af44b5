"""Records for events the pipeline will not deliver: dead letters and quarantined records.

A :class:`DeadLetter` is an envelope that failed for good at one destination, with the whole history,
so an operator can read why and replay it. Its ``id`` is derived from the envelope id, the destination
and the attempt, so reprocessing after a crash produces the same id (the DLQ index keys on it).

A :class:`QuarantineRecord` is a record on ``webhooks.inbound`` that no trusted edge signed, or that
is not an envelope at all: the raw bytes are kept (base64) with the reason.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import DeliveryError, WebhookEnvelope

_DLQ_NAMESPACE = uuid.UUID("6f1d3c52-5a0e-4c39-9b7e-1d8f0a9b6c11")


def dead_letter_id(envelope_id: str, destination: str, attempt: int) -> str:
    """Stable: the same failure reprocessed after a crash gets the same id."""
    return str(uuid.uuid5(_DLQ_NAMESPACE, f"{envelope_id}|{destination}|{attempt}"))


class DeadLetter(BaseModel):
    """An envelope that will not reach ``destination``; key on Kafka: the envelope key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    id: str = Field(description="stable id (uuid5 of envelope id, destination, attempt)")
    dead_at: datetime
    destination: str
    reason: Literal["permanent", "attempts_exhausted"]
    final_error: DeliveryError
    history: list[DeliveryError] = Field(description="every failed attempt, oldest first")
    envelope: WebhookEnvelope


class QuarantineRecord(BaseModel):
    """A record from ``webhooks.inbound`` that could not be trusted or read."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    schema_version: Literal[1] = 1
    reason: Literal[
        "bad_signature", "undecodable", "invalid_envelope", "key_mismatch", "unknown_provider", "misrouted"
    ]
    detail: str
    quarantined_at: datetime
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str] = Field(default_factory=dict, description="record headers, decoded leniently")
