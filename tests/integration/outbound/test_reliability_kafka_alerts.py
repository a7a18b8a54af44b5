"""The Kafka alert sink against the real broker started by tests/conftest.py."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.reliability.alerts import AlertManager, KafkaAlertSink
from services.reliability.monitor import ServiceState

pytestmark = pytest.mark.kafka


async def test_alerts_reach_the_topic_as_json_keyed_by_service(
    kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    topic = unique("ops.alerts")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()

    sink = KafkaAlertSink(kafka_bootstrap, topic=topic)
    await sink.start()
    try:
        manager = AlertManager(sinks=[sink])
        await manager.observe("pay", ServiceState.DOWN, None, criticality="critical", impact=("shop",))
        await manager.observe("pay", ServiceState.DOWN, None, criticality="critical")  # no repeat
        await manager.observe("pay", ServiceState.HEALTHY, None, criticality="critical")
    finally:
        await sink.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=unique("alerts-test")
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000, max_records=10)
        records = [r for batch in batches.values() for r in batch]
        while len(records) < 2:
            more = await consumer.getmany(timeout_ms=10_000, max_records=10)
            assert more, f"only {len(records)} alert(s) arrived"
            records += [r for batch in more.values() for r in batch]
    finally:
        await consumer.stop()
    assert [r.key for r in records] == [b"pay", b"pay"]
    alerts = [json.loads(r.value) for r in records]
    assert [(a["kind"], a["state"], a["impact"]) for a in alerts] == [
        ("down", "down", ["shop"]),
        ("recovered", "healthy", []),
    ]
