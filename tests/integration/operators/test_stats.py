"""Stats on the real broker: lag from committed vs end offsets, dead and quarantined per provider."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.deadletter import QuarantineRecord
from schemas.topics import dispatch_role
from services.operators.api import create_operator_app
from services.operators.stats import HealthThresholds
from services.operators.views import to_json
from tests.integration.operators.seed import Seeded


def quarantined(key: bytes | None) -> bytes:
    record = QuarantineRecord(
        reason="bad_signature",
        detail="test",
        quarantined_at=datetime.now(UTC),
        source_topic="inbound",
        source_partition=0,
        source_offset=0,
        key=key,
        value=b"{}",
    )
    return record.model_dump_json().encode()


async def test_lag_and_per_provider_counts(seeded: Seeded) -> None:
    ops, bootstrap = seeded.ops, seeded.settings.kafka.servers
    ready = ops.topics.ready("stripe")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(5):
            await producer.send_and_wait(ready, b"x", key=f"stripe:{n}".encode(), partition=0)
        for key in (b"stripe:a", b"stripe:b", b"github:c", None):
            await producer.send_and_wait(ops.topics.quarantine, quarantined(key))
    finally:
        await producer.stop()
    group = seeded.ops.topics.group(dispatch_role("stripe"))
    committer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await committer.start()
    try:
        committer.assign([TopicPartition(ready, 0)])
        await committer.commit({TopicPartition(ready, 0): 2})
    finally:
        await committer.stop()

    thresholds = HealthThresholds(lag_warn=1, lag_critical=5, dead_warn=100, dead_critical=200)
    stats = await ops.stats(thresholds=thresholds)
    rows = {(row.group, row.partition): row for row in stats.lag}
    assert (rows[(group, 0)].committed, rows[(group, 0)].end, rows[(group, 0)].lag) == (2, 5, 3)
    assert (rows[(group, 1)].committed, rows[(group, 1)].lag) == (None, 0)
    assert stats.lag_by_group[group] == 3
    assert sum(stats.lag_by_group.values()) == 3  # every other queue is empty
    assert {row.group for row in stats.lag} == {q.group for q in ops.topics.queues()}
    assert stats.dead_by_provider == {"github": 4, "stripe": 10}
    assert stats.quarantined_by_provider == {"?": 1, "github": 1, "stripe": 2}
    assert stats.health == 75  # lag 3 is halfway from warn 1 to critical 5; dead letters below warn
    assert to_json(stats)["lag_total"] == 3

    recent = await ops.stats(since=datetime.now(UTC))  # the corpus died in 2026-11-01
    assert recent.dead_by_provider == {}


async def test_metrics_endpoint_exports_lag_without_a_token(seeded: Seeded) -> None:
    ops, bootstrap = seeded.ops, seeded.settings.kafka.servers
    ready = ops.topics.ready("github")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(4):
            await producer.send_and_wait(ready, b"x", key=f"github:{n}".encode(), partition=1)
    finally:
        await producer.stop()
    app = create_operator_app(seeded.settings, operators=ops)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    group = seeded.ops.topics.group(dispatch_role("github"))
    line = f'breakwater_consumer_lag{{group="{group}",topic="{ready}",partition="1"}} 4'
    assert line in response.text.splitlines()
