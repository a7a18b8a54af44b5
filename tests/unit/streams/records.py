"""Building consumer records and handlers for unit tests, with no broker."""

from __future__ import annotations

from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from schemas.envelope import WebhookEnvelope
from schemas.producer import encode_envelope
from schemas.signing import EnvelopeSigner
from schemas.topics import PipelineTopics
from streams.dedup import DedupHandler
from streams.metrics import Metrics

SIGNER = EnvelopeSigner(keys={"k1": b"secret"}, active_key_id="k1")
TOPICS = PipelineTopics(prefix="", app_id="bw")
INBOUND = TopicPartition(TOPICS.inbound, 0)


def record(
    value: bytes | None,
    *,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
    offset: int = 0,
    timestamp: int = 1_000_000,
    tp: TopicPartition = INBOUND,
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        timestamp=timestamp,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=tuple(headers or ()),
    )


def signed(envelope: WebhookEnvelope, **kwargs: int) -> ConsumerRecord[bytes, bytes]:
    key, value, headers = encode_envelope(envelope, SIGNER)
    return record(value, key=key, headers=headers, **kwargs)


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def dedup_handler(state: Path, clock: Clock, window_seconds: int = 60) -> tuple[DedupHandler, Metrics]:
    metrics = Metrics()
    handler = DedupHandler(
        bootstrap="unused:9092",
        topics=TOPICS,
        signer=SIGNER,
        providers=frozenset({"stripe", "github"}),
        window_seconds=window_seconds,
        expiry_interval_seconds=10,
        state_dir=state,
        metrics=metrics,
        clock=clock,
        inbound_partitions=1,
    )
    handler.stores[0] = handler._open(0)
    return handler, metrics
