"""Poison records are data: what a loop writes for a record it cannot process or an output it cannot store.

Every stage guards its per-record work. A record whose handling raises is quarantined (inbound: no
envelope to dead-letter yet, or a ready/retry record that is not even an envelope) or dead-lettered
(an envelope on a ready or retry topic), with the exception's class and message as its reason, and
the loop goes on. Only infrastructure failures stop a loop (:func:`is_infrastructure`): Kafka, the disk,
memory, RocksDB. A retried infrastructure failure heals; a poison record would fail the same way for
ever, and the crash-only worker would re-read it after every restart and stop every provider.

An output that can never be stored whole (larger than :data:`~schemas.limits.RECORD_MAX_BYTES`, or
refused by the broker for the same record again and again) is replaced by a bounded quarantine record:
the value left out, its size and SHA-256 kept, with the input record it came from and the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from rocksdict import DbClosedError

from schemas.deadletter import DeadLetter, QuarantineRecord, dead_letter_id
from schemas.envelope import DeliveryError, WebhookEnvelope
from schemas.headers import DESTINATION_HEADER
from schemas.limits import RECORD_MAX_BYTES
from services.errors import BreakwaterError
from streams.eos_types import Origin, Out, Record

REASON_MAX_CHARS = 500
UNROUTED = "(none)"
"""The destination of an unprocessable dead letter whose record named none."""
BOUNDED_HEADROOM = 64 << 10
"""What a record needs besides key and value in a batch: headers, framing; generous on purpose."""
OUTPUT_MAX_BYTES = RECORD_MAX_BYTES - BOUNDED_HEADROOM
"""An output whose key and value together exceed this is replaced before it is sent."""


class BadHeader(BreakwaterError):
    """A record header the stage needs is missing its value or is not UTF-8."""


def is_infrastructure(exc: BaseException) -> bool:
    """Failures of what the loop runs on, not of the record: these stop the loop (and are retried).

    rocksdict raises a bare ``Exception`` for RocksDB's own errors (I/O, corruption); no poison record
    makes Python code raise a bare ``Exception``, so that type counts as infrastructure too.
    """
    return isinstance(exc, OSError | KafkaError | MemoryError | DbClosedError) or type(exc) is Exception


def reason_of(exc: BaseException) -> str:
    """``"ClassName: message"``, bounded: what an operator reads first."""
    return f"{type(exc).__name__}: {exc}"[:REASON_MAX_CHARS]


def header_text(record: Record, name: str) -> str | None:
    """The UTF-8 value of header ``name`` (``None`` when absent); :class:`BadHeader` when unreadable."""
    for header, raw in record.headers or ():
        if header != name:
            continue
        if raw is None:
            raise BadHeader(f"header {name!r} has no value")
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadHeader(f"header {name!r} is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    return None


def lenient_headers(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str | None]:
    """Every header, decoded with replacement characters; a header without value stays ``None``."""
    return {
        str(name): None if raw is None else bytes(raw).decode("utf-8", "replace")
        for name, raw in headers or ()
    }


def origin_of(record: Record) -> Origin:
    return (record.topic, record.partition, record.offset)


def quarantine(topic: str, record: Record, reason: str, detail: str) -> Out:
    """The quarantine output for ``record``: its raw key, value and headers with ``reason``."""
    quarantined = QuarantineRecord(
        reason=reason,  # checked by the model
        detail=detail[:REASON_MAX_CHARS],
        quarantined_at=datetime.now(UTC),
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        key=record.key,
        value=record.value,
        headers=lenient_headers(record.headers),
    )
    return Out(
        topic,
        record.key,
        quarantined.model_dump_json().encode(),
        follow=TopicPartition(record.topic, record.partition),
        origin=origin_of(record),
    )


def output_bytes(out: Out) -> int:
    """Key plus value: what decides whether an output fits (headers ride in the headroom)."""
    return len(out.key or b"") + len(out.value or b"")


def bounded(out: Out, quarantine_topic: str, detail: str) -> Out:
    """A small record that stands for ``out``: the value left out, its size and digest kept."""
    topic, partition, offset = out.origin or (out.topic, -1, -1)
    value = out.value or b""
    key = out.key if out.key is None or len(out.key) <= 1024 else out.key[:1024]
    record = QuarantineRecord(
        reason="too_large",
        detail=detail[:REASON_MAX_CHARS],
        quarantined_at=datetime.now(UTC),
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        key=key,
        value=None,
        headers={},
        target_topic=out.topic,
        value_bytes=len(value),
        value_sha256=hashlib.sha256(value).hexdigest(),
    )
    return Out(quarantine_topic, key, record.model_dump_json().encode(), origin=out.origin)


def unprocessable(
    topics: tuple[str, str], record: Record, envelope: WebhookEnvelope | None, stage: str, exc: BaseException
) -> Out:
    """What a ready or retry record whose handling raised becomes: a dead letter, or quarantine.

    ``topics`` is ``(dlq, quarantine)``. With an envelope the record is dead-lettered (reason
    ``unprocessable``, the exception in ``final_error``) so the DLQ tools can show and replay it; a
    record that is not even an envelope is quarantined with its raw bytes.
    """
    dlq, quarantine_topic = topics
    if envelope is None:
        return quarantine(quarantine_topic, record, "unprocessable", reason_of(exc))
    now = datetime.now(UTC)
    try:
        destination = header_text(record, DESTINATION_HEADER) or UNROUTED
    except BadHeader:
        destination = UNROUTED
    error = DeliveryError(
        at=now,
        stage=stage,
        destination=None,  # not a failed delivery: retry budgets do not count it
        error_class=type(exc).__name__,
        message=reason_of(exc),
        retryable=False,
        attempt=envelope.attempt,
    )
    failed = envelope.model_copy(update={"errors": [*envelope.errors, error]})
    dead = DeadLetter(
        id=dead_letter_id(envelope.id, destination, envelope.attempt),
        dead_at=now,
        destination=destination,
        reason="unprocessable",
        final_error=error,
        history=failed.errors,
        envelope=failed,
    )
    return Out(
        dlq,
        record.key,
        dead.model_dump_json().encode(),
        follow=TopicPartition(record.topic, record.partition),
        origin=origin_of(record),
    )
