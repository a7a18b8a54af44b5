"""Dedup does not depend on the producer's partitioner (issue #13 A).

An upstream gateway producing with confluent-kafka (librdkafka's default partitioner, consistent_random:
CRC32 of the key) puts a resend on another partition than the edge's murmur2 did; each inbound partition
has its own dedup table, so the resend must be forwarded to the partition that owns its key.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import Counter
from typing import Any

import pytest

from schemas.envelope import WebhookEnvelope
from schemas.events import EventRecord
from schemas.headers import FORWARDED_FROM_HEADER
from schemas.producer import encode_envelope
from schemas.signing import EnvelopeSigner
from services.edge.publisher import EnvelopeProducer
from services.kafka.partitioner import default_partition
from tests.support.librdkafka import Record, librdkafka_produce
from tests.support.pipeline import CommittedReader, create_topics, envelope, running_worker, settings_of

pytestmark = pytest.mark.kafka
PARTITIONS = 4


def crc32_elsewhere(prefix: str) -> WebhookEnvelope:
    """An envelope whose key librdkafka (CRC32) and the edge (murmur2) put on different partitions."""
    for i in range(1000):
        item = envelope("stripe", f"{prefix}{i}")
        key = item.key.encode()
        if zlib.crc32(key) % PARTITIONS != default_partition(key, PARTITIONS):
            return item
    raise AssertionError("unreachable")


async def test_a_resend_on_another_partition_is_still_a_duplicate(config: dict[str, Any]) -> None:
    settings = settings_of(config)
    assert settings.topics.partitions == PARTITIONS
    topics = await create_topics(settings)
    signer = EnvelopeSigner.of(settings.signing)
    bootstrap = settings.kafka.servers

    # the edge takes the event first (aiokafka: murmur2) ...
    taken = crc32_elsewhere("evt_taken_")
    key, value, headers = encode_envelope(taken, signer)
    async with EnvelopeProducer(bootstrap, signer, topic=topics.inbound) as edge:
        acked = await edge.send_and_wait(taken, timeout=10)
    assert acked.partition == default_partition(key, PARTITIONS)
    # ... then the gateway resends the same signed record, and sends 1,500 events, 300 of them twice
    distinct = [envelope("stripe", f"evt_gw_{i}") for i in range(1500)]
    keyed = [(key, value, headers)] + [encode_envelope(e, signer) for e in distinct + distinct[:300]]
    # and two records that carry no usable key: quarantined where they land, never forwarded
    valid = encode_envelope(envelope("stripe", "evt_keyless"), signer)
    records: list[Record] = [*keyed, (None, valid[1], valid[2]), (b"\xff\xfe", valid[1], valid[2])]
    landed = await asyncio.to_thread(librdkafka_produce, bootstrap, topics.inbound, records)
    assert landed[0] == zlib.crc32(key) % PARTITIONS != acked.partition  # librdkafka: CRC32, elsewhere
    should_forward = sum(
        1 for (k, _, _), p in zip(keyed, landed[:-2], strict=True) if p != default_partition(k, 4)
    )
    unique_keys = {taken.key.encode()} | {e.key.encode() for e in distinct}

    async with (
        CommittedReader(bootstrap, topics.name("webhooks.events")) as events,
        CommittedReader(bootstrap, topics.quarantine) as quarantine,
        running_worker(settings) as metrics,
    ):
        await events.until(lambda r: len(r.records) >= len(unique_keys), 90, "every event")
        await quarantine.until(lambda r: len(r.records) >= 2, 30, "the keyless records")
        await events.settle()

    delivered = Counter(events.keys())
    assert [k for k, n in delivered.items() if n > 1] == []
    assert set(delivered) == unique_keys
    assert metrics["dedup.forwarded"] >= should_forward > 1000  # about 3 in 4 land elsewhere
    assert metrics["dedup.duplicate"] >= 301
    assert {
        EventRecord.model_validate_json(r.value or b"").key.encode() for r in events.records
    } == unique_keys
    async with CommittedReader(bootstrap, topics.ready("stripe")) as ready:
        await ready.settle(1.0)
    assert sorted(ready.keys()) == sorted(unique_keys)  # dedup itself emitted each event once
    assert sorted(r.key or b"-" for r in quarantine.records) == [b"-", b"\xff\xfe"]
    async with CommittedReader(bootstrap, topics.inbound) as inbound:
        await inbound.until(lambda r: len(r.records) >= 1 + len(records), 30, "the inbound records")
        await inbound.settle(1.0)
    forwarded = [r for r in inbound.records if FORWARDED_FROM_HEADER in dict(r.headers)]
    assert len(forwarded) == should_forward  # each exactly once (read_committed), never again
    assert all(r.partition == default_partition(r.key or b"", PARTITIONS) for r in forwarded)
