"""Issue #13, defect 1: one record must never stop a loop (a crash-only worker re-reads it for ever).

Poison on every topic a worker reads (null and non-UTF-8 header values, records that are not envelopes)
sits between good records; the worker keeps running, every poison record comes out once as a
quarantine record or dead letter naming why, and every good record is delivered once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from schemas.deadletter import DeadLetter, QuarantineRecord
from schemas.headers import DESTINATION_HEADER
from tests.support.pipeline import (
    CommittedReader,
    create_topics,
    envelope,
    produce,
    running_worker,
    settings_of,
)

pytestmark = pytest.mark.kafka

Raw = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes | None]]]


async def produce_to(bootstrap: str, records: list[Raw]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, key, value, headers in records:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def test_poison_on_inbound_ready_and_retry_topics_is_accounted_for_and_the_worker_goes_on(
    config: dict[str, Any],
) -> None:
    settings = settings_of(config)
    topics = await create_topics(settings)
    ready_value = envelope("stripe", "evt_ready_ok").model_dump_json().encode()
    signed_value = envelope("stripe", "evt_signed").model_dump_json().encode()
    poison: list[Raw] = [
        # inbound: the record of the issue (written with no signing key), a null key id, non-UTF-8 ids
        (topics.inbound, b"stripe:evt_p1", b'{"id": "evt_p1"}', [("bw-signature", None)]),
        (topics.inbound, b"stripe:evt_p2", signed_value, [("bw-key-id", None), ("bw-signature", b"00")]),
        (topics.inbound, b"\xff\xfe", b"\xff", [("bw-key-id", b"\xff"), ("bw-signature", b"\xc3")]),
        (topics.inbound, None, b"", [("bw-key-id", b"dev"), ("bw-signature", None)]),
        # ready: a null and a non-UTF-8 destination header, and records that are not envelopes
        (topics.ready("stripe"), b"stripe:evt_r1", ready_value, [(DESTINATION_HEADER, None)]),
        (topics.ready("stripe"), b"stripe:evt_r2", ready_value, [(DESTINATION_HEADER, b"\xff")]),
        (topics.ready("github"), b"github:x", b"not json", []),
        (topics.ready("github"), b"github:y", b'{"provider": "github"}', []),
        (topics.ready("github"), b"github:z", None, [(DESTINATION_HEADER, None)]),
        # a retry tier: not a retry record
        (topics.retry("t1"), b"stripe:evt_t1", b'{"tier": "t1"}', [(DESTINATION_HEADER, None)]),
    ]
    good = [envelope("stripe", "evt_ok1"), envelope("github", "evt_ok2")]
    await produce_to(settings.kafka.servers, poison[:2])
    await produce(settings, good[:1])
    await produce_to(settings.kafka.servers, poison[2:])
    await produce(settings, good[1:])
    await produce_to(
        settings.kafka.servers, [(topics.ready("stripe"), b"stripe:evt_ready_ok", ready_value, [])]
    )
    bootstrap = settings.kafka.servers
    async with (
        CommittedReader(bootstrap, topics.quarantine) as quarantine,
        CommittedReader(bootstrap, topics.dlq) as dlq,
        CommittedReader(bootstrap, topics.name("webhooks.events")) as events,
        running_worker(settings) as metrics,
    ):
        await quarantine.until(lambda r: len(r.records) >= 8, 90, "quarantined poison")
        await dlq.until(lambda r: len(r.records) >= 2, 30, "dead-lettered poison")
        await events.until(lambda r: len(r.records) >= 3, 30, "the good events")
        await asyncio.gather(quarantine.settle(1.5), dlq.settle(0.1), events.settle(0.1))

    assert sorted(events.keys()) == [b"github:evt_ok2", b"stripe:evt_ok1", b"stripe:evt_ready_ok"]
    quarantined = [QuarantineRecord.model_validate_json(r.value or b"") for r in quarantine.records]
    by_source = {(q.source_topic, q.source_partition, q.source_offset): q for q in quarantined}
    assert len(by_source) == len(quarantined) == 8  # each poison record once
    inbound = [q for q in quarantined if q.source_topic == topics.inbound]
    assert [q.reason for q in inbound] == ["bad_signature"] * 4
    assert (b"\xff\xfe", b"\xff") in [(q.key, q.value) for q in inbound]  # raw bytes kept
    assert {"bw-signature": None} in [q.headers for q in inbound]
    assert sorted(q.reason for q in quarantined if q.source_topic != topics.inbound) == [
        "invalid_envelope",
        "invalid_record",
        "undecodable",
        "undecodable",
    ]
    letters = [DeadLetter.model_validate_json(r.value or b"") for r in dlq.records]
    assert (
        sorted((d.reason, d.final_error.error_class) for d in letters) == [("unprocessable", "BadHeader")] * 2
    )
    assert all(d.envelope.event_id == "evt_ready_ok" for d in letters)
    assert metrics["dedup.new"] == 2
