"""Issue #13, defect 2: an output the broker refuses must never be committed as if written.

aiokafka fails a refused batch's future and commits the transaction anyway; the loop now confirms every
output first. Each test writes a record whose output the broker cannot take between good records and
counts what comes out (read_committed): the good ones exactly once, the large one as a bounded
quarantine record that names its source, its size and its digest; nothing lost.

Topics are created here with ``max.message.bytes`` = ``RECORD_MAX_BYTES`` (what the catalogue declares
on the edge-input branch) except where a test gives one topic a smaller limit on purpose.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import replace
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from schemas.deadletter import DeadLetter, QuarantineRecord
from schemas.envelope import WebhookEnvelope
from schemas.limits import RECORD_MAX_BYTES
from schemas.producer import encode_envelope
from schemas.signing import EnvelopeSigner
from schemas.topics import PipelineTopics
from services.config import BreakwaterSettings
from services.kafka.admin import ensure_topics
from streams.poison import OUTPUT_MAX_BYTES
from streams.topics import catalogue, pipeline_topics
from tests.integration.streams.http_sink import Sink, serve_sink
from tests.support.pipeline import CommittedReader, envelope, running_worker, settings_of

pytestmark = pytest.mark.kafka
BROKER_DEFAULT = 1_048_588  # message.max.bytes of a broker left at its default


async def create_sized_topics(settings: BreakwaterSettings, smaller: dict[str, int]) -> PipelineTopics:
    """The catalogue with ``max.message.bytes`` = RECORD_MAX_BYTES, or the ``smaller`` limit given."""
    specs = [
        replace(
            spec,
            configs={**spec.configs, "max.message.bytes": str(smaller.get(spec.name, RECORD_MAX_BYTES))},
        )
        for spec in catalogue(settings)
    ]
    await ensure_topics(settings.kafka.servers, specs)
    return pipeline_topics(settings)


async def write(
    settings: BreakwaterSettings, records: list[WebhookEnvelope | tuple[bytes, bytes]], topic: str
) -> dict[bytes, tuple[int, int]]:
    """Signed envelopes or raw (key, value) records, in order; returns each key's partition and offset."""
    signer = EnvelopeSigner.of(settings.signing)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.servers, acks="all", max_request_size=2 * RECORD_MAX_BYTES
    )
    await producer.start()
    where: dict[bytes, tuple[int, int]] = {}
    try:
        for item in records:
            if isinstance(item, WebhookEnvelope):
                key, value, headers = encode_envelope(item, signer)
            else:
                (key, value), headers = item, []
            meta = await producer.send_and_wait(topic, value, key=key, headers=headers)
            where[key] = (meta.partition, meta.offset)
    finally:
        await producer.stop()
    return where


async def test_a_quarantine_copy_the_broker_refuses_becomes_a_bounded_record_not_a_loss(
    config: dict[str, Any],
) -> None:
    """The first case of the issue: a 1,000,000-byte inbound record whose copy (~1.33 MB) is refused."""
    settings = settings_of(config)
    topics = await create_sized_topics(settings, {pipeline_topics(settings).quarantine: BROKER_DEFAULT})
    good = [envelope("stripe", f"evt_{i}") for i in range(40)]
    poison = (b"stripe:huge", b"x" * 1_000_000)  # unsigned: quarantined, with a copy too big for the topic
    where = await write(settings, [*good[:20], poison, *good[20:]], topics.inbound)
    async with (
        CommittedReader(settings.kafka.servers, topics.quarantine) as quarantine,
        CommittedReader(settings.kafka.servers, topics.name("webhooks.events")) as events,
        running_worker(settings),
    ):
        await quarantine.until(lambda r: len(r.records) >= 1, 40, "the bounded record")
        await events.until(lambda r: len(r.records) >= len(good), 60, "the good events")
        await asyncio.gather(quarantine.settle(2.0), events.settle(0.1))

    assert sorted(events.keys()) == sorted(e.key.encode() for e in good)  # each once
    (record,) = [QuarantineRecord.model_validate_json(r.value or b"") for r in quarantine.records]
    assert (record.reason, record.value, record.target_topic) == ("too_large", None, topics.quarantine)
    assert (record.source_topic, record.source_partition, record.source_offset) == (
        topics.inbound,
        *where[poison[0]],
    )
    assert record.value_bytes is not None and record.value_bytes > BROKER_DEFAULT
    assert record.value_sha256 is not None and len(record.value_sha256) == 64
    assert "refused 3 times" in record.detail and "MessageSizeTooLarge" in record.detail


async def test_an_output_over_the_record_limit_is_replaced_before_it_is_sent(config: dict[str, Any]) -> None:
    """A 3.5 MiB inbound value fits its topic, its base64 quarantine copy (4.7 MB) fits nowhere."""
    settings = settings_of(config)
    topics = await create_sized_topics(settings, {})
    value = b"y" * (3_500 << 10)
    good = [envelope("github", f"evt_{i}") for i in range(10)]
    where = await write(settings, [good[0], (b"github:huge", value), *good[1:]], topics.inbound)
    async with (
        CommittedReader(settings.kafka.servers, topics.quarantine) as quarantine,
        CommittedReader(settings.kafka.servers, topics.name("webhooks.events")) as events,
        running_worker(settings),
    ):
        await quarantine.until(lambda r: len(r.records) >= 1, 60, "the bounded record")
        await events.until(lambda r: len(r.records) >= len(good), 60, "the good events")
        await asyncio.gather(quarantine.settle(1.5), events.settle(0.1))

    assert sorted(events.keys()) == sorted(e.key.encode() for e in good)
    (record,) = [QuarantineRecord.model_validate_json(r.value or b"") for r in quarantine.records]
    assert record.reason == "too_large" and "over the record limit" in record.detail  # no abort needed
    assert (record.source_partition, record.source_offset) == where[b"github:huge"]
    assert record.value_bytes is not None and record.value_bytes > OUTPUT_MAX_BYTES


async def test_a_large_body_refused_by_its_destination_is_dead_lettered_or_bounded_never_lost(
    config: dict[str, Any],
) -> None:
    """The second case: a 785,742-byte GitHub body, a destination answering 400, a dead letter > 1 MiB.

    With the DLQ at the catalogue's limit the dead letter is kept whole; on a DLQ created with the
    broker's default limit it is refused, and after three refusals replaced by a bounded record.
    """
    lock = threading.Lock()

    def refuse(key: str, seen: int) -> tuple[int, dict[str, str]]:
        with lock:
            return 400, {}

    big = json.dumps({"action": "opened", "pad": "z" * 785_700}).encode()
    assert abs(len(big) - 785_742) < 100
    with serve_sink(Sink(refuse)) as sink:
        http = {
            "destinations": {"sink": {"kind": "http", "url": sink.url}},
            "routes": [{"destinations": ["sink"]}],
        }
        settings = settings_of(config, **http)
        topics = await create_sized_topics(settings, {pipeline_topics(settings).dlq: BROKER_DEFAULT})
        large = envelope("github", "evt_large", "pull_request", body=json.loads(big))
        small = [envelope("github", f"evt_s{i}", "push") for i in range(5)]
        await write(settings, [small[0], large, *small[1:]], topics.inbound)
        async with (
            CommittedReader(settings.kafka.servers, topics.quarantine) as quarantine,
            CommittedReader(settings.kafka.servers, topics.dlq) as dlq,
            running_worker(settings),
        ):
            await dlq.until(lambda r: len(r.records) >= len(small), 120, "dead letters of the small ones")
            await quarantine.until(lambda r: len(r.records) >= 1, 60, "the bounded dead letter")
            await asyncio.gather(quarantine.settle(2.0), dlq.settle(0.1))

    letters = [DeadLetter.model_validate_json(r.value or b"") for r in dlq.records]
    assert sorted(d.envelope.event_id for d in letters) == sorted(e.event_id for e in small)  # once each
    assert all(d.reason == "permanent" and d.final_error.error_class == "http_400" for d in letters)
    (record,) = [QuarantineRecord.model_validate_json(r.value or b"") for r in quarantine.records]
    assert (record.reason, record.target_topic, record.key) == ("too_large", topics.dlq, b"github:evt_large")
    assert record.source_topic == topics.ready("github")
    assert record.value_bytes is not None and record.value_bytes > BROKER_DEFAULT
