"""Dead letters and fake Kafka records for the operator tests (unit and integration)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from schemas.deadletter import DeadLetter, dead_letter_id
from schemas.envelope import DeliveryError, WebhookEnvelope
from services.operators.marks import DlqMark

BASE = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def dead_letter(
    provider: str,
    n: int,
    *,
    error_class: str = "http_500",
    destination: str = "sink",
    event_type: str = "charge.failed",
    hours: float = 0,
    attempts: int = 1,
) -> DeadLetter:
    """Dead ``hours`` after :data:`BASE`, after ``attempts`` failures at ``destination``."""
    dead_at = BASE + timedelta(hours=hours)
    envelope = WebhookEnvelope(
        provider=provider,
        provider_kind=provider,
        event_id=f"evt_{provider}_{n}",
        event_type=event_type,
        received_at=dead_at - timedelta(minutes=5),
        body=json.dumps({"id": f"evt_{provider}_{n}", "type": event_type}).encode(),
        content_type="application/json",
        edge_instance="test",
    )
    errors = [
        DeliveryError(
            at=dead_at - timedelta(seconds=attempts - i),
            stage="dispatch",
            destination=destination,
            error_class=error_class,
            message=f"{error_class} at attempt {i + 1}",
            retryable=error_class != "http_400",
            attempt=i + 1,
        )
        for i in range(attempts)
    ]
    failed = envelope.model_copy(update={"attempt": attempts, "errors": errors})
    return DeadLetter(
        id=dead_letter_id(envelope.id, destination, attempts),
        dead_at=dead_at,
        destination=destination,
        reason="permanent" if error_class == "http_400" else "attempts_exhausted",
        final_error=errors[-1],
        history=errors,
        envelope=failed,
    )


@dataclass(frozen=True)
class FakeRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0
    headers: tuple[tuple[str, bytes], ...] = field(default_factory=tuple)


def dlq_records(dead: list[DeadLetter]) -> list[FakeRecord]:
    return [
        FakeRecord(0, i, d.envelope.key.encode(), d.model_dump_json().encode()) for i, d in enumerate(dead)
    ]


def mark_record(
    offset: int, dead_id: str, state: Literal["replayed", "discarded"] | None, by: str = "ops"
) -> FakeRecord:
    """A record on the state topic; ``state=None`` is a tombstone."""
    mark = DlqMark(state=state, by=by, at=BASE, replay_of=dead_id) if state else None
    value = mark.model_dump_json().encode() if mark else None
    return FakeRecord(0, offset, dead_id.encode(), value)
