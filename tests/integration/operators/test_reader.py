"""The operators' committed reads on the real broker: waiting for a transaction's records to be readable."""

from __future__ import annotations

from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.topics import TopicSpec
from services.kafka.admin import ensure_topics
from services.operators.reader import read_snapshot, wait_until_stable


async def test_waiting_for_the_stable_offset_ends_only_once_the_transaction_commits(
    kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    topic = unique("stable")
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, partitions=1, replication_factor=1)])
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=unique("txn"), enable_idempotence=True
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        meta = await (await producer.send(topic, b"open", key=b"k"))
        tp = TopicPartition(topic, meta.partition)
        written = {tp: meta.offset}
        assert await _stable_offset(kafka_bootstrap, tp) == meta.offset  # held back by the open transaction
        assert await wait_until_stable(kafka_bootstrap, written, timeout=1.0) is False
        assert (await read_snapshot(kafka_bootstrap, topic)).records == []

        await producer.commit_transaction()
        assert await wait_until_stable(kafka_bootstrap, written, timeout=30.0) is True
        assert await _stable_offset(kafka_bootstrap, tp) == meta.offset + 2  # the record and its marker
        assert [r.value for r in (await read_snapshot(kafka_bootstrap, topic)).records] == [b"open"]
    finally:
        await producer.stop()


async def _stable_offset(bootstrap: str, tp: TopicPartition) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets([tp])
        return ends[tp]
    finally:
        await consumer.stop()
