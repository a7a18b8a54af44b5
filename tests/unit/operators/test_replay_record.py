"""What a replay publishes: a ready record the dispatch loop handles like one back from a retry tier."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.envelope import WebhookEnvelope
from schemas.headers import DESTINATION_HEADER, REPLAY_OF_HEADER, REPLAYED_AT_HEADER, REPLAYED_BY_HEADER
from schemas.signing import EnvelopeSigner
from schemas.topics import PipelineTopics
from services.operators.dlq_index import DlqIndex
from services.operators.replay import replay_record
from services.operators.views import decode_body, entry_detail, to_json
from streams.poison import UNROUTED
from streams.policy import failures_at
from tests.unit.operators.deadletters import dead_letter, dlq_records
from tests.unit.streams.records import record
from tests.unit.streams.test_dispatch import READY_TP, FakeDeliverer, handler, run

AT = datetime(2026, 11, 29, 12, tzinfo=UTC)


async def test_destination_header_is_the_one_dispatch_reads() -> None:
    """Dispatch sends a replay to the destination that failed only, not to every route of its type."""
    dead = dead_letter("stripe", 1, destination="hook", event_type="charge.failed")
    entry = DlqIndex.build(dlq_records([dead]), []).entries[dead.id]
    topic, key, value, headers = replay_record(entry, PipelineTopics(), by="alice", at=AT)
    assert topic == READY_TP.topic
    fake = FakeDeliverer()
    dispatch, _ = handler(fake)  # routes stripe charge.* to "events" (Kafka) and "hook" (HTTP)
    outs = await run(dispatch, record(value, key=key, headers=headers, tp=READY_TP))
    assert fake.calls == [dead.envelope.key] and outs == []


def test_replay_keeps_history_adds_a_marker_and_targets_the_failed_destination() -> None:
    dead = dead_letter("github", 3, destination="sink", attempts=3)
    entry = DlqIndex.build(dlq_records([dead]), []).entries[dead.id]
    signer = EnvelopeSigner(keys={"k": b"secret"}, active_key_id="k")
    topic, key, value, headers = replay_record(
        entry, PipelineTopics(prefix="t."), by="alice", at=AT, signer=signer
    )
    assert topic == "t.webhooks.ready.github"
    assert key == dead.envelope.key.encode()
    sent = WebhookEnvelope.model_validate_json(value)
    assert sent.id == dead.envelope.id and sent.body == dead.envelope.body
    assert sent.attempt == 3  # kept: a reset would give the replay's dead letter this one's id
    assert sent.errors[:3] == dead.envelope.errors
    marker = sent.errors[3]
    assert (marker.stage, marker.destination, marker.error_class) == ("replay", None, "replayed")
    assert dead.id in marker.message and "alice" in marker.message
    assert failures_at(sent, "sink") == 0  # the marker gives the destination a fresh budget
    found = dict(headers)
    assert found[DESTINATION_HEADER] == b"sink"
    assert found[REPLAY_OF_HEADER] == dead.id.encode()
    assert found[REPLAYED_BY_HEADER] == b"alice"
    assert found[REPLAYED_AT_HEADER] == AT.isoformat().encode()
    assert signer.verify(value, headers) == "k"


def test_body_is_decoded_as_json_text_or_base64() -> None:
    assert to_json(decode_body(b'{"a": 1}', "application/json")) == {"encoding": "json", "content": {"a": 1}}
    assert to_json(decode_body(b"a=1&b=2", "application/x-www-form-urlencoded")) == {
        "encoding": "text",
        "content": "a=1&b=2",
    }
    assert to_json(decode_body(b"{broken", "application/json")) == {"encoding": "text", "content": "{broken"}
    assert to_json(decode_body(b"\xff\x00", "application/octet-stream")) == {
        "encoding": "base64",
        "content": "/wA=",
    }


def test_detail_holds_the_whole_record() -> None:
    dead = dead_letter("stripe", 1, attempts=2)
    index = DlqIndex.build(dlq_records([dead]), [])
    detail = to_json(entry_detail(index.entries[dead.id], []))
    assert detail["body"]["content"] == {"id": "evt_stripe_1", "type": "charge.failed"}
    assert [e["attempt"] for e in detail["history"]] == [1, 2]
    assert detail["envelope"]["event_id"] == "evt_stripe_1" and "body" not in detail["envelope"]
    assert detail["key"] == "stripe:evt_stripe_1"
    assert detail["mark"] is None and detail["state"] == "dead"


def test_a_dead_letter_that_failed_before_routing_is_replayed_to_its_routes() -> None:
    """An ``unprocessable`` dead letter names no destination: its replay must route, not re-dead-letter."""
    dead = dead_letter("github", 4, destination=UNROUTED, attempts=1)
    entry = DlqIndex.build(dlq_records([dead]), []).entries[dead.id]
    _, _, _, headers = replay_record(entry, PipelineTopics(prefix="t."), by="bob", at=AT, signer=None)
    assert DESTINATION_HEADER not in dict(headers)
