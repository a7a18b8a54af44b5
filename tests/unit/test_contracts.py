"""The wire contracts: envelope round trips, signatures, ids, committed JSON Schemas, the catalogue."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import topics as names
from schemas.envelope import WebhookEnvelope, envelope_id_time, new_envelope_id
from schemas.export import RECORD_TYPES, SCHEMA_DIR, drifted, render
from schemas.producer import encode_envelope
from schemas.signing import EnvelopeSignatureError, EnvelopeSigner
from schemas.topics import INBOUND, topic_catalogue
from streams.topics import catalogue
from tests.support.edge import edge_settings

SIGNER = EnvelopeSigner(keys={"old": b"old-key", "new": b"new-key"}, active_key_id="new")


def envelope(body: bytes = b'{"id":"evt_1"}', **changes: object) -> WebhookEnvelope:
    values: dict[str, object] = {
        "provider": "stripe",
        "provider_kind": "stripe",
        "event_id": "evt_1",
        "event_type": "charge.succeeded",
        "received_at": datetime.now(UTC),
        "body": body,
        "content_type": "application/json",
        "edge_instance": "edge-1",
    }
    values.update(changes)
    return WebhookEnvelope.model_validate(values)


@given(st.binary(max_size=2048))
def test_any_body_bytes_survive_the_round_trip(body: bytes) -> None:
    original = envelope(body)
    assert WebhookEnvelope.model_validate_json(original.model_dump_json()) == original


def test_key_is_provider_and_event_id() -> None:
    key, value, headers = encode_envelope(envelope(), SIGNER)
    assert key == b"stripe:evt_1"
    assert SIGNER.verify(value, headers) == "new"


def test_rotation_old_key_still_verifies() -> None:
    value = envelope().model_dump_json().encode()
    old_signer = EnvelopeSigner(keys={"old": b"old-key"}, active_key_id="old")
    assert SIGNER.verify(value, old_signer.sign(value)) == "old"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda v, h: (v + b" ", h), "does not match"),
        (lambda v, h: (v, []), "no envelope signature"),
        (lambda v, h: (v, [("bw-key-id", b"ghost"), h[1]]), "unknown key id"),
    ],
)
def test_tampered_or_unsigned_records_are_refused(mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    value = envelope().model_dump_json().encode()
    bad_value, bad_headers = mutate(value, SIGNER.sign(value))
    with pytest.raises(EnvelopeSignatureError, match=reason):
        SIGNER.verify(bad_value, bad_headers)


def test_envelope_ids_are_uuid7_and_sort_by_time() -> None:
    first = new_envelope_id()
    time.sleep(0.002)  # ids carry milliseconds: two ms apart must sort
    second = new_envelope_id()
    assert uuid.UUID(first).version == 7
    assert first < second
    assert abs(envelope_id_time(first) - datetime.now(UTC)) < timedelta(seconds=5)


def test_unknown_fields_and_versions_are_refused() -> None:
    data = json.loads(envelope().model_dump_json())
    with pytest.raises(ValueError, match="extra"):
        WebhookEnvelope.model_validate({**data, "surprise": 1})
    with pytest.raises(ValueError, match="schema_version"):
        WebhookEnvelope.model_validate({**data, "schema_version": 99})


def test_committed_json_schemas_match_the_models() -> None:
    assert drifted() == [], "run `make schemas` and commit schemas/jsonschema/"


def test_every_schema_is_valid_json_schema() -> None:
    for model in RECORD_TYPES.values():
        schema = json.loads(render(model))
        assert schema["$schema"].endswith("2020-12/schema")
        assert schema["type"] == "object"


def test_catalogue_has_a_ready_topic_per_provider_and_a_retry_topic_per_tier() -> None:
    names = [
        t.name
        for t in topic_catalogue(
            providers=["github", "stripe"],
            retry_tiers=["10s", "1m"],
            partitions=4,
            replication_factor=3,
            min_insync_replicas=2,
            retention_ms=86_400_000,
        )
    ]
    assert names[0] == INBOUND
    assert {
        "webhooks.ready.github",
        "webhooks.ready.stripe",
        "webhooks.retry.10s",
        "webhooks.retry.1m",
    } <= set(names)
    assert len(names) == len(set(names))


def test_every_catalogue_topic_names_its_record_schema_and_each_named_file_exists() -> None:
    settings = edge_settings(
        "127.0.0.1:1",
        pipeline={
            "topic_prefix": "p.",
            "destinations": {"events": {"kind": "kafka"}, "mirror": {"kind": "kafka", "topic": "x.mirror"}},
            "routes": [{"destinations": ["events", "mirror"]}],
        },
    )
    specs = catalogue(settings)
    for spec in specs:
        if spec.record_schema in RECORD_TYPES:
            assert (SCHEMA_DIR / f"{spec.record_schema}.json").is_file(), spec
        else:  # no published schema: says so, and what the records are
            assert spec.record_schema.startswith(f"{names.UNPUBLISHED} ("), spec
            assert spec.record_schema.endswith(")"), spec
    carried = {spec.name: spec.record_schema for spec in specs}
    assert carried["p.webhooks.inbound"] == carried["p.webhooks.ready.stripe"] == names.ENVELOPE_SCHEMA
    assert carried["p.webhooks.retry.10s"] == names.RETRY_SCHEMA
    assert carried["p.webhooks.events"] == carried["p.x.mirror"] == names.EVENT_RECORD_SCHEMA
    assert carried["p.webhooks.dlq"] == names.DEAD_LETTER_SCHEMA
    assert carried["p.webhooks.quarantine"] == names.QUARANTINE_SCHEMA
    assert set(RECORD_TYPES) <= set(carried.values()), "an exported record type no topic carries"
