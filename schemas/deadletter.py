"""Records for events the pipeline will not deliver: dead letters and quarantined records.

A :class:`DeadLetter` is an envelope that failed for good at one destination, with the whole history,
so an operator can read why and replay it. Its ``id`` is derived from the envelope id, the destination
and the attempt, so reprocessing after a crash produces the same id (the DLQ index keys on it).

A :class:`QuarantineRecord` is a record that no trusted edge signed, that is not an envelope at all,
or whose processing raised (``unprocessable``): the raw bytes are kept (base64) with the reason. When
a record can never be stored whole (``too_large``: over ``RECORD_MAX_BYTES``, or refused by the broker
again and again), the quarantine record leaves the value out and keeps its size and SHA-256 instead,
with the topic it was meant for; ``source_*`` still point at the input record it came from.
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
    reason: Literal["permanent", "attempts_exhausted", "unprocessable"] = Field(
        description="unprocessable: handling the record raised (final_error names the exception)"
    )
    final_error: DeliveryError
    history: list[DeliveryError] = Field(description="every failed attempt, oldest first")
    envelope: WebhookEnvelope


class QuarantineRecord(BaseModel):
    """A record that could not be trusted, read or processed, or an output that could never be stored."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    schema_version: Literal[1] = 1
    reason: Literal[
        "bad_signature",
        "undecodable",
        "invalid_envelope",
        "key_mismatch",
        "unknown_provider",
        "invalid_record",
        "unprocessable",
        "too_large",
        "misrouted",
    ]
    detail: str
    quarantined_at: datetime
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str | None] = Field(
        default_factory=dict, description="record headers, decoded leniently (null: a header without value)"
    )
    target_topic: str | None = Field(
        default=None, description="too_large: the topic the left-out record was meant for"
    )
    value_bytes: int | None = Field(default=None, description="too_large: size of the left-out value")
    value_sha256: str | None = Field(default=None, description="too_large: SHA-256 hex of the left-out value")
