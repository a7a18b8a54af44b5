"""An upstream gateway written from the README's "For upstream gateways" alone, on confluent-kafka.

Nothing here builds or signs a record with Breakwater's code: the envelope JSON, the base64 body, the
HMAC header and the key are made by hand as that section says, and librdkafka produces them with its own
(CRC32) partitioner. The workers must deliver each envelope once, and quarantine the records signed with
a key they do not hold.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pytest
from confluent_kafka import KafkaError, Message, Producer

from schemas.deadletter import QuarantineRecord
from schemas.events import EventRecord
from tests.support.pipeline import CommittedReader, create_topics, running_worker, settings_of

pytestmark = pytest.mark.kafka

KEY_ID, KEY_TEXT = "gateway-2026", "gatewäy-sécret-🔑"  # the key's text, used as its UTF-8 bytes
TRACE_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
Record = tuple[bytes, bytes, list[tuple[str, bytes]]]


def uuid7() -> str:
    """48 bits of Unix milliseconds, version 7, variant, randomness (RFC 9562)."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return str(uuid.UUID(int=value))


def gateway_record(
    provider: str, kind: str, event_id: str, event_type: str, body: bytes, content_type: str, *, key: str
) -> tuple[str, Record]:
    """One envelope as the README describes it: JSON value, key ``provider:event_id``, signed headers."""
    envelope_id, trace_parent = uuid7(), TRACE_PARENT
    envelope = {
        "schema_version": 1,
        "id": envelope_id,
        "provider": provider,
        "provider_kind": kind,
        "event_id": event_id,
        "event_type": event_type,
        "received_at": datetime.now(UTC).isoformat(),
        "body": base64.urlsafe_b64encode(body).decode(),
        "content_type": content_type,
        "headers": {"x-gateway": "eu-1"},
        "edge_instance": "gateway-eu-1",
        "attempt": 0,
        "errors": [],
        "trace_parent": trace_parent,
    }
    value = json.dumps(envelope, ensure_ascii=False, separators=(", ", ": ")).encode()  # any layout
    signature = hmac.new(key.encode(), value, hashlib.sha256).hexdigest()
    headers = [
        ("bw-key-id", KEY_ID.encode()),
        ("bw-signature", signature.encode("ascii")),
        ("traceparent", trace_parent.encode()),
    ]
    return envelope_id, (f"{provider}:{event_id}".encode(), value, headers)


def gateway_produce(bootstrap: str, topic: str, records: list[Record]) -> None:
    """Produce with the README's producer settings and wait for every delivery report."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "message.max.bytes": 4194304,
        }
    )
    failed: list[KafkaError] = []

    def report(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            failed.append(error)

    for key, value, headers in records:
        wire: list[tuple[str, str | bytes | None]] = list(headers)
        producer.produce(topic, value=value, key=key, headers=wire, on_delivery=report)
        producer.poll(0)
    assert producer.flush(30) == 0 and not failed, failed


async def test_a_hand_written_gateway_is_delivered_once_and_a_wrong_key_is_quarantined(
    config: dict[str, Any],
) -> None:
    config = {**config, "signing": {"active_key_id": "edge", "keys": {"edge": "edge-key", KEY_ID: KEY_TEXT}}}
    settings = settings_of(config)
    topics = await create_topics(settings)
    bodies: dict[str, tuple[str, str, str, bytes, str]] = {
        f"evt_{i}": (
            "stripe",
            "stripe",
            "charge.succeeded",
            b'{"id":"evt_%d","amount":%d}' % (i, i),
            "application/json",
        )
        for i in range(12)
    }
    bodies["evt_zoe"] = (
        "stripe",
        "stripe",
        "customer.créé",
        '{"name":"Zoë 🌊"}'.encode(),
        "application/json",
    )
    bodies["delivery-1"] = ("github", "github", "push", b'{"ref":"refs/heads/main"}', "application/json")
    bodies["evt_bin"] = (
        "stripe",
        "stripe",
        "file.created",
        bytes([0xFB, 0xFF, 0xFE, 0, 0x80]),
        "application/octet-stream",
    )
    bodies["evt_empty"] = ("stripe", "stripe", "ping", b"", "text/plain")
    ids: dict[str, str] = {}
    records: list[Record] = []
    for event_id, (provider, kind, event_type, body, content_type) in bodies.items():
        ids[event_id], record = gateway_record(
            provider, kind, event_id, event_type, body, content_type, key=KEY_TEXT
        )
        records.append(record)
    records.append(records[0])  # the provider resent one: a duplicate, dropped by dedup
    forged = [
        gateway_record(
            "stripe",
            "stripe",
            f"evt_forged{i}",
            "charge.succeeded",
            b"{}",
            "application/json",
            key="not-the-key",
        )[1]
        for i in range(2)
    ]
    gateway_produce(settings.kafka.servers, topics.inbound, records + forged)

    async with (
        CommittedReader(settings.kafka.servers, topics.events) as events,
        CommittedReader(settings.kafka.servers, topics.quarantine) as quarantine,
        running_worker(settings),
    ):
        await events.until(lambda r: len(r.records) >= len(bodies), 60, "the gateway's events")
        await quarantine.until(lambda r: len(r.records) >= len(forged), 30, "the forged records")
        await events.settle(1.5)

    delivered = {r.key: EventRecord.model_validate_json(r.value or b"") for r in events.records}
    by_key = {r.key: r.headers for r in events.records}
    assert len(events.records) == len(bodies), "each envelope once, the resend dropped"
    assert set(delivered) == {f"{p}:{e}".encode() for e, (p, *_) in bodies.items()}
    for event_id, (provider, _, event_type, body, content_type) in bodies.items():
        event = delivered[f"{provider}:{event_id}".encode()]
        assert (event.id, event.event_type) == (ids[event_id], event_type)
        headers = {name: raw.decode("ascii") for name, raw in by_key[f"{provider}:{event_id}".encode()]}
        assert headers["traceparent"] == TRACE_PARENT and headers["bw-envelope-id"] == ids[event_id]
        assert (headers["bw-provider"], unquote(headers["bw-event-type"])) == (provider, event_type)
        assert unquote(headers["bw-event-id"]) == event_id
        if content_type == "application/json":
            assert event.data == json.loads(body) and event.raw_body is None
        else:
            assert event.raw_body == body and event.data is None
    quarantined = [QuarantineRecord.model_validate_json(r.value or b"") for r in quarantine.records]
    assert sorted((q.reason, q.key or b"") for q in quarantined) == [
        ("bad_signature", b"stripe:evt_forged0"),
        ("bad_signature", b"stripe:evt_forged1"),
    ]
