"""Record contracts: the fast event JSON equals the model's, and committed JSON Schemas match the models."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.envelope import WebhookEnvelope
from schemas.events import EventRecord, MalformedPayload, event_record, event_record_json
from schemas.export import drifted
from tests.support.pipeline import envelope


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"id": "evt_1", "amount": 12.5, "nested": [1, {"a": null}]}'),
        ("application/vnd.api+json; charset=utf-8", b"[1, 2]"),
        ("application/x-www-form-urlencoded", b"a=1&b=\xff\x00"),
    ],
)
def test_fast_event_json_is_the_model_serialization(content_type: str, body: bytes) -> None:
    item = WebhookEnvelope.model_validate(
        {
            **envelope("shopify", "e1").model_dump(),
            "content_type": content_type,
            "body": body,
            "occurred_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        }
    )
    fast = event_record_json(item)
    assert fast == event_record(item).model_dump_json().encode()
    assert EventRecord.model_validate_json(fast) == event_record(item)


def test_a_json_body_that_does_not_parse_is_malformed() -> None:
    item = WebhookEnvelope.model_validate({**envelope("stripe", "e1").model_dump(), "body": b"{oops"})
    with pytest.raises(MalformedPayload):
        event_record_json(item)


def test_committed_json_schemas_match_the_stream_record_models() -> None:
    stale = set(drifted()) & {"event-record", "dead-letter", "quarantine-record", "retry-record"}
    assert not stale, "regenerate: .venv/bin/python -c 'from schemas.export import export; export()'"
