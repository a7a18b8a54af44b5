"""The edge on a real broker: 202 means stored, and a broker that is down means 503, never 2xx."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord

from schemas.envelope import WebhookEnvelope
from services.cli.sample import signed_sample
from services.edge.verifiers.signers import generate_sendgrid_key, sample_body, sign_sendgrid
from services.kafka.local import LocalKafka, wait_until_answers
from tests.support.edge import SECRETS, edge_settings, envelope_signer, running_edge
from tests.support.waiting import until

pytestmark = pytest.mark.kafka


async def create_topic(bootstrap: str, name: str, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def read_all(
    bootstrap: str, topic: str, expected: int, timeout: float = 20.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on ``topic`` (read_committed), waiting until ``expected`` have arrived."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", isolation_level="read_committed"
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(timeout):
            while len(records) < expected:
                batch = await consumer.getmany(timeout_ms=500)
                for part in batch.values():
                    records.extend(part)
        extra = await consumer.getmany(timeout_ms=300)  # nothing beyond what was expected
        for part in extra.values():
            records.extend(part)
    finally:
        await consumer.stop()
    return records


async def test_signed_webhook_lands_on_inbound_with_key_headers_and_exact_body(
    kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    topic = unique("inbound")
    await create_topic(kafka_bootstrap, topic)
    settings = edge_settings(kafka_bootstrap)
    body, headers = signed_sample("stripe", SECRETS["stripe"], event_id="evt_exact_1")
    headers["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with running_edge(settings, topic) as edge, httpx.AsyncClient(base_url=edge.url) as client:
        response = await client.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["event_ids"] == ["evt_exact_1"]

    (record,) = await read_all(kafka_bootstrap, topic, expected=1)
    assert record.key == b"stripe:evt_exact_1"
    key_id = envelope_signer().verify(record.value, record.headers)
    assert key_id == "t1"
    # One webhook is one trace: the edge's span is a child of the caller's, same trace id.
    traceparent = dict(record.headers)["traceparent"].decode()
    assert traceparent.split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert traceparent != headers["traceparent"]
    envelope = WebhookEnvelope.model_validate_json(record.value)
    assert envelope.id == answer["ids"][0]
    assert envelope.body == body  # the exact bytes, not a re-serialization
    assert envelope.event_type == json.loads(body)["type"]
    assert envelope.headers["stripe-signature"] == headers["Stripe-Signature"]
    assert envelope.provider == "stripe" and envelope.attempt == 0
    assert envelope.trace_parent == traceparent


async def test_sendgrid_batch_becomes_one_envelope_per_event(
    kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    topic = unique("inbound")
    await create_topic(kafka_bootstrap, topic)
    private_key, public_key = generate_sendgrid_key()
    settings = edge_settings(kafka_bootstrap, providers={"sendgrid": {"secrets": [public_key]}})
    body = sample_body("sendgrid", count=3)
    headers = sign_sendgrid(body, private_key, int(time.time()))
    async with running_edge(settings, topic) as edge, httpx.AsyncClient(base_url=edge.url) as client:
        response = await client.post("/webhooks/sendgrid", content=body, headers=headers)
    assert response.status_code == 202, response.text
    sent_ids = [event["sg_event_id"] for event in json.loads(body)]
    assert response.json()["event_ids"] == sent_ids
    records = await read_all(kafka_bootstrap, topic, expected=3)
    envelopes = [WebhookEnvelope.model_validate_json(r.value) for r in records]
    assert sorted(e.event_id for e in envelopes) == sorted(sent_ids)
    assert sorted(e.batch_index for e in envelopes if e.batch_index is not None) == [0, 1, 2]
    assert {r.key for r in records} == {f"sendgrid:{i}".encode() for i in sent_ids}


async def test_rejected_webhooks_are_never_written(
    kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    topic = unique("inbound")
    await create_topic(kafka_bootstrap, topic)
    settings = edge_settings(kafka_bootstrap)
    body, headers = signed_sample("github", "not-the-secret")
    async with running_edge(settings, topic) as edge, httpx.AsyncClient(base_url=edge.url) as client:
        bad = await client.post("/webhooks/github", content=body, headers=headers)
        good_body, good_headers = signed_sample("github", SECRETS["github"], event_id="delivery-ok")
        good = await client.post("/webhooks/github", content=good_body, headers=good_headers)
    assert bad.status_code == 401
    assert good.status_code == 202
    records = await read_all(kafka_bootstrap, topic, expected=1)
    assert [r.key for r in records] == [b"github:delivery-ok"]


async def test_broker_down_means_503_then_recovers_without_restarting_the_edge(
    private_broker: LocalKafka, unique: Callable[[str], str]
) -> None:
    topic = unique("inbound")
    await create_topic(private_broker.bootstrap, topic)
    settings = edge_settings(
        private_broker.bootstrap, edge={"produce_timeout_seconds": 1.5, "retry_after_seconds": 7}
    )
    accepted: set[str] = set()
    async with (
        running_edge(settings, topic) as edge,
        httpx.AsyncClient(base_url=edge.url, timeout=10) as client,
    ):

        async def post(event_id: str) -> httpx.Response:
            body, headers = signed_sample("stripe", SECRETS["stripe"], event_id=event_id)
            response = await client.post("/webhooks/stripe", content=body, headers=headers)
            if response.status_code == 202:
                accepted.add(event_id)
            return response

        assert (await post("evt_before")).status_code == 202
        assert (await client.get("/readyz")).status_code == 200

        await asyncio.to_thread(private_broker.stop)
        down = [await post(f"evt_down_{i}") for i in range(3)]
        assert [r.status_code for r in down] == [503, 503, 503]
        assert all(r.headers["Retry-After"] == "7" for r in down)
        assert all(r.json()["error"] == "unavailable" for r in down)
        await asyncio.sleep(1.1)  # the readiness answer is cached for a second
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/healthz")).status_code == 200  # alive, just not ready

        await asyncio.to_thread(private_broker.start)
        await wait_until_answers(private_broker.bootstrap, 60)
        async with asyncio.timeout(60):  # the producer reconnects on its own
            while (response := await post("evt_after")).status_code != 202:
                assert response.status_code == 503
                await asyncio.sleep(0.5)

    records = await read_all(private_broker.bootstrap, topic, expected=len(accepted))
    stored = {r.key.decode().split(":", 1)[1] for r in records}
    # Every 202 is on the topic. A 503'd write may still land later (the provider retries; dedup drops it).
    assert accepted <= stored
    assert {"evt_before", "evt_after"} <= accepted


async def test_full_buffer_answers_503_at_once(
    private_broker: LocalKafka, unique: Callable[[str], str]
) -> None:
    topic = unique("inbound")
    await create_topic(private_broker.bootstrap, topic)
    settings = edge_settings(
        private_broker.bootstrap, edge={"produce_timeout_seconds": 5, "max_in_flight": 1}
    )
    async with (
        running_edge(settings, topic) as edge,
        httpx.AsyncClient(base_url=edge.url, timeout=10) as client,
    ):
        warm_body, warm_headers = signed_sample("stripe", SECRETS["stripe"])
        assert (
            await client.post("/webhooks/stripe", content=warm_body, headers=warm_headers)
        ).status_code == 202
        await asyncio.to_thread(private_broker.stop)
        body1, headers1 = signed_sample("stripe", SECRETS["stripe"])
        waiting = asyncio.create_task(client.post("/webhooks/stripe", content=body1, headers=headers1))
        # The first request holds the only slot while it waits for an acknowledgement that cannot come.
        edge_publisher = edge.edge.publisher
        await until(lambda: edge_publisher.in_flight == 1, timeout=5, what="the first write to wait")
        body2, headers2 = signed_sample("stripe", SECRETS["stripe"])
        second = await client.post("/webhooks/stripe", content=body2, headers=headers2)
        assert second.status_code == 503
        assert "waiting for Kafka" in second.json()["message"]
        assert int(second.headers["Retry-After"]) > 0
        first = await waiting
        assert first.status_code == 503  # its deadline passed with the broker down
