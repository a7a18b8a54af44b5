"""The pipeline on a secured broker: each role its own principal, least privilege enforced by Kafka."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import (
    AuthenticationFailedError,
    ClusterAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
)

from services.edge.verifiers.signers import sign_stripe
from services.kafka import clients
from services.kafka.clients import KafkaTarget
from services.kafka.internals import refresh_metadata
from services.operators.filters import DlqFilter
from services.operators.service import Operators
from streams.topics import catalogue, pipeline_topics
from tests.integration.secure.conftest import SecurePipeline
from tests.support.edge import running_edge
from tests.support.librdkafka import Record, librdkafka_config, librdkafka_produce
from tests.support.pipeline import REPO, running_worker
from tests.unit.operators.deadletters import dead_letter

SECRET = "whsec_test"  # the Stripe secret of tests.support.pipeline's providers
AUTHORIZATION_ERRORS = (TopicAuthorizationFailedError, ClusterAuthorizationFailedError)


def stripe(event_id: str) -> bytes:
    return b'{"id":"' + event_id.encode() + b'","type":"charge.succeeded","created":1,"data":{}}'


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    await refresh_metadata(consumer)
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


async def read_all(kafka: KafkaTarget, topic: str, expected: int, timeout: float = 60) -> list[bytes]:
    """Keys of the committed records of ``topic``, once ``expected`` arrived and a little more did not."""
    consumer = clients.consumer(kafka)
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        keys: list[bytes] = []
        deadline, quiet_until = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            keys += [record.key or b"" for records in batches.values() for record in records]
            if len(keys) >= expected:
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() > quiet_until:
                    break
        return keys
    finally:
        await consumer.stop()


async def end_offsets(kafka: KafkaTarget, topic: str) -> int:
    consumer = clients.consumer(kafka)
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, topic)
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def test_signed_webhooks_reach_events_exactly_once_each_role_as_itself(
    secure_pipeline: SecurePipeline,
) -> None:
    """Edge as ``edge``, worker as ``worker`` (no create rights: the topics exist), read as ``consumer``."""
    await secure_pipeline.provision()
    edge, worker = secure_pipeline.settings("edge"), secure_pipeline.settings("worker")
    topics = pipeline_topics(edge)
    ids = [f"evt_{n}" for n in range(40)]
    async with (
        running_edge(edge, topics.inbound) as running,
        httpx.AsyncClient(base_url=running.url, timeout=30) as client,
    ):
        for event_id in [*ids, *ids[:10]]:  # ten providers' retries: the same events again
            body = stripe(event_id)
            response = await client.post(
                "/webhooks/stripe", content=body, headers=sign_stripe(body, SECRET, int(time.time()))
            )
            assert response.status_code == 202, response.text
    consumer = secure_pipeline.settings("consumer").kafka
    async with running_worker(worker):
        keys = await read_all(consumer, topics.events, expected=len(ids))
    assert sorted(keys) == sorted(f"stripe:{event_id}".encode() for event_id in ids)  # 50 in, 40 out
    assert await end_offsets(secure_pipeline.settings("admin").kafka, topics.inbound) >= 50


async def test_the_edge_principal_cannot_read_the_events(secure_pipeline: SecurePipeline) -> None:
    await secure_pipeline.provision()
    edge = secure_pipeline.settings("edge")
    consumer = clients.consumer(edge.kafka, pipeline_topics(edge).events, auto_offset_reset="earliest")
    try:
        with pytest.raises(TopicAuthorizationFailedError, match=r"webhooks\.events"):
            await asyncio.wait_for(consumer.start(), 20)  # its metadata request is refused already
            await asyncio.wait_for(consumer.getone(), 20)
    finally:
        await consumer.stop()


async def test_a_rogue_producer_is_refused_by_the_broker(secure_pipeline: SecurePipeline) -> None:
    """A bad password fails authentication; a real principal without write rights is not authorized."""
    await secure_pipeline.provision()
    admin = secure_pipeline.settings("admin")
    inbound = pipeline_topics(admin).inbound
    impostor = clients.producer(secure_pipeline.settings("edge", password="not-the-password").kafka)
    with pytest.raises((AuthenticationFailedError, KafkaConnectionError)):
        await asyncio.wait_for(impostor.start(), 20)
    await impostor.stop()
    reader = clients.producer(secure_pipeline.settings("consumer").kafka)
    try:
        with pytest.raises(AUTHORIZATION_ERRORS):
            await asyncio.wait_for(reader.start(), 20)  # idempotence: the broker refuses a producer id
            await asyncio.wait_for(reader.send_and_wait(inbound, b"forged", key=b"stripe:evt"), 20)
    finally:
        await reader.stop()
    assert await end_offsets(admin.kafka, inbound) == 0


@pytest.mark.parametrize(
    "entry", [["services.cli.main", "worker"], ["streams.worker"]], ids=["cli", "module"]
)
def test_a_worker_without_create_rights_names_the_missing_topics(
    secure_pipeline: SecurePipeline, entry: list[str]
) -> None:
    """No topics yet: ``breakwater worker`` (or ``python -m streams.worker``) as ``worker`` stops at once,
    exit 1, one message listing them."""
    asyncio.run(secure_pipeline.provision(topics=False))
    worker = secure_pipeline.settings("worker")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREAKWATER_")}
    env["PYTHONPATH"] = str(REPO)
    for section, values in secure_pipeline.config_as("worker").items():
        env[f"BREAKWATER_{section.upper()}"] = values if isinstance(values, str) else json.dumps(values)
    result = subprocess.run(
        [sys.executable, "-m", *entry],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "may not create topics" in result.stderr
    for spec in catalogue(worker):
        assert spec.name in result.stderr


async def test_an_operator_replays_dead_letters_as_itself(secure_pipeline: SecurePipeline) -> None:
    """The operator reads the dead letters and writes the ready topic and the marks, transactionally."""
    await secure_pipeline.provision()
    admin, operator = secure_pipeline.settings("admin"), secure_pipeline.settings("operator")
    topics = pipeline_topics(admin)
    dead = [dead_letter("stripe", n) for n in range(3)]
    producer = clients.producer(secure_pipeline.settings("worker").kafka)  # the worker writes the DLQ
    await producer.start()
    try:
        for item in dead:
            await producer.send(topics.dlq, item.model_dump_json().encode(), key=item.envelope.key.encode())
    finally:
        await producer.stop()
    ops = Operators.of(operator)
    report = await ops.replay(await ops.select(DlqFilter(provider="stripe")), by="ops")
    assert (len(report.done), report.failed) == (3, [])
    assert len(await read_all(admin.kafka, topics.ready("stripe"), expected=3)) == 3
    with pytest.raises(TopicAuthorizationFailedError):  # and nothing else: not the events
        await read_all(operator.kafka, topics.events, expected=0, timeout=5)


async def test_a_librdkafka_gateway_takes_the_same_security_settings(secure_pipeline: SecurePipeline) -> None:
    """confluent-kafka configured from KafkaSettings (tests.support.librdkafka) writes as the edge would."""
    await secure_pipeline.provision()
    edge = secure_pipeline.settings("edge")
    inbound = pipeline_topics(edge).inbound
    config = librdkafka_config(edge.kafka)
    assert (config["security.protocol"], config["sasl.mechanisms"]) == ("SASL_SSL", "SCRAM-SHA-512")
    records: list[Record] = [(b"stripe:evt_gw", b"{}", [])]
    partitions = await asyncio.to_thread(librdkafka_produce, edge.kafka, inbound, records)
    assert partitions == [0]
    assert await end_offsets(secure_pipeline.settings("admin").kafka, inbound) == 1
