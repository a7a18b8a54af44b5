"""Size limits on the real broker: what fits is stored whole, what never fits gets 413, never 503-forever."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from schemas.envelope import WebhookEnvelope
from schemas.limits import ENVELOPE_MAX_BYTES, RECORD_MAX_BYTES
from schemas.topics import INBOUND
from services.edge.publisher import EnvelopeProducer, Publisher
from services.edge.verifiers.signers import generate_sendgrid_key, sign_sendgrid, sign_stripe
from services.errors import PayloadTooLarge
from services.kafka.admin import ensure_topics
from tests.integration.edge.test_edge_kafka import read_all
from tests.support.edge import SECRETS, edge_settings, envelope_signer, running_edge

pytestmark = pytest.mark.kafka

DEFAULT_BODY_LIMIT = 1024 * 1024


async def catalogue_inbound(bootstrap: str, name: str) -> None:
    """A topic configured exactly as the catalogue configures webhooks.inbound."""
    spec = next(s for s in edge_settings(bootstrap).topic_catalogue() if s.name == INBOUND)
    await ensure_topics(bootstrap, [replace(spec, name=name, partitions=1, replication_factor=1)])


def stripe_body(size: int, event_id: str) -> bytes:
    """A Stripe event padded to exactly ``size`` bytes."""
    head = {"id": event_id, "object": "event", "type": "charge.succeeded", "created": int(time.time())}
    empty = json.dumps({**head, "pad": ""}, separators=(",", ":")).encode()
    body = json.dumps({**head, "pad": "x" * (size - len(empty))}, separators=(",", ":")).encode()
    assert len(body) == size
    return body


async def test_bodies_up_to_the_limit_are_stored_whole_and_over_it_get_413(
    kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    topic = unique("inbound-sizes")
    await catalogue_inbound(kafka_bootstrap, topic)
    settings = edge_settings(kafka_bootstrap)
    assert settings.edge.max_body_bytes == DEFAULT_BODY_LIMIT  # the default, not raised for the test
    sizes = {"evt_786k": 786 * 1024, "evt_1mib": DEFAULT_BODY_LIMIT}
    bodies = {event_id: stripe_body(size, event_id) for event_id, size in sizes.items()}
    async with (
        running_edge(settings, topic) as edge,
        httpx.AsyncClient(base_url=edge.url, timeout=30) as client,
    ):
        for event_id, body in bodies.items():
            headers = sign_stripe(body, SECRETS["stripe"], int(time.time()))
            response = await client.post("/webhooks/stripe", content=body, headers=headers)
            assert response.status_code == 202, (event_id, response.text)
        over = stripe_body(DEFAULT_BODY_LIMIT + 1, "evt_over")
        headers = sign_stripe(over, SECRETS["stripe"], int(time.time()))
        refused = await client.post("/webhooks/stripe", content=over, headers=headers)
    assert refused.status_code == 413, refused.text
    assert refused.json()["error"] == "too_large"
    assert str(DEFAULT_BODY_LIMIT) in refused.json()["message"]
    assert "Retry-After" not in refused.headers

    records = await read_all(kafka_bootstrap, topic, expected=2, timeout=60)
    stored = {r.key.decode(): WebhookEnvelope.model_validate_json(r.value) for r in records}
    assert set(stored) == {f"stripe:{event_id}" for event_id in bodies}
    for event_id, body in bodies.items():
        assert stored[f"stripe:{event_id}"].body == body  # whole, byte for byte
    assert max(len(r.value) for r in records) <= ENVELOPE_MAX_BYTES


async def test_a_sendgrid_batch_over_max_in_flight_gets_413_naming_the_limit(
    kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    topic = unique("inbound-batch")
    await catalogue_inbound(kafka_bootstrap, topic)
    private_key, public_key = generate_sendgrid_key()
    settings = edge_settings(kafka_bootstrap, providers={"sendgrid": {"secrets": [public_key]}})
    assert settings.edge.max_in_flight == 10_000
    now = int(time.time())
    events = [{"sg_event_id": f"e{i:05d}", "event": "open", "timestamp": now} for i in range(12_000)]
    body = json.dumps(events, separators=(",", ":")).encode()
    assert len(body) < settings.edge.max_body_bytes  # small events: the body limit is not what stops it
    async with (
        running_edge(settings, topic) as edge,
        httpx.AsyncClient(base_url=edge.url, timeout=30) as client,
    ):
        for _ in range(2):  # the same answer every time: waiting cannot help, so no Retry-After
            headers = sign_sendgrid(body, private_key, int(time.time()))
            response = await client.post("/webhooks/sendgrid", content=body, headers=headers)
            assert response.status_code == 413, response.text
            assert "Retry-After" not in response.headers
            message = response.json()["message"]
            assert "12000 events" in message and "edge.max_in_flight (10000)" in message
        small = json.dumps(events[:3], separators=(",", ":")).encode()
        headers = sign_sendgrid(small, private_key, int(time.time()))
        assert (await client.post("/webhooks/sendgrid", content=small, headers=headers)).status_code == 202
    records = await read_all(kafka_bootstrap, topic, expected=3)
    assert sorted(r.key for r in records) == [b"sendgrid:e00000", b"sendgrid:e00001", b"sendgrid:e00002"]


def envelope(event_id: str, body: bytes) -> WebhookEnvelope:
    return WebhookEnvelope(
        provider="stripe",
        provider_kind="stripe",
        event_id=event_id,
        event_type="t",
        received_at=datetime.now(UTC),
        body=body,
        content_type="application/json",
        edge_instance="test",
    )


async def test_an_envelope_over_the_limit_is_413_and_its_batch_is_not_written(
    kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    """Headers can push an envelope past the limit that the body alone would fit: checked per envelope."""
    topic = unique("inbound-envelope")
    await catalogue_inbound(kafka_bootstrap, topic)
    producer = EnvelopeProducer(kafka_bootstrap, envelope_signer(), topic=topic)
    await producer.start()
    publisher = Publisher(producer, timeout=30, max_in_flight=100, retry_after=1)
    try:
        huge = envelope("evt_huge", b"x" * (ENVELOPE_MAX_BYTES * 3 // 4))
        with pytest.raises(PayloadTooLarge, match=f"over the {ENVELOPE_MAX_BYTES}-byte limit"):
            await publisher.publish([envelope("evt_small", b"{}"), huge])
        await publisher.publish([envelope("evt_after", b"{}")])
    finally:
        await producer.stop()
    records = await read_all(kafka_bootstrap, topic, expected=1)
    assert [r.key for r in records] == [b"stripe:evt_after"]  # nothing of the refused batch


async def topic_configs(bootstrap: str, name: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        [resource] = response.to_object()["resources"]
        return {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
    finally:
        await admin.close()


async def test_topics_ensure_raises_an_old_topics_size_limit_and_keeps_its_other_overrides(
    kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    name = unique("inbound-old")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:  # as an earlier release created it: the broker's 1 MiB default, an operator's retention
        await admin.create_topics([NewTopic(name, 1, 1, topic_configs={"retention.ms": "123456789"})])
    finally:
        await admin.close()
    assert int((await topic_configs(kafka_bootstrap, name))["max.message.bytes"]) < RECORD_MAX_BYTES
    spec = next(s for s in edge_settings(kafka_bootstrap).topic_catalogue() if s.name == INBOUND)
    old = replace(spec, name=name, partitions=1, replication_factor=1)

    first = await ensure_topics(kafka_bootstrap, [old])
    assert first.reconfigured == [name] and first.present == [name]
    configs = await topic_configs(kafka_bootstrap, name)
    assert configs["max.message.bytes"] == str(RECORD_MAX_BYTES)
    assert configs["retention.ms"] == "123456789"  # not the catalogue's: an operator's choice stays
    again = await ensure_topics(kafka_bootstrap, [old])
    assert again.reconfigured == []  # idempotent


async def test_a_topic_that_predates_the_limits_gets_503_saying_what_to_run(
    kafka_bootstrap: str, unique: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    """Storable once the operator runs `topics ensure`: a retry is right, with a loud reason."""
    topic = unique("inbound-unupgraded")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:  # the broker's default max.message.bytes (1 MiB), as before the catalogue declared one
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    body = stripe_body(786 * 1024, "evt_unupgraded")
    async with (
        running_edge(edge_settings(kafka_bootstrap), topic) as edge,
        httpx.AsyncClient(base_url=edge.url, timeout=30) as client,
    ):
        headers = sign_stripe(body, SECRETS["stripe"], int(time.time()))
        response = await client.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 503 and "Retry-After" in response.headers
    assert "too large for the topic" in response.json()["message"]
    assert "breakwater topics ensure" in caplog.text
