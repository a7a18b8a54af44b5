"""The retry stage without a broker: records that must not stop or hold back their tier."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.deadletter import DeadLetter
from schemas.headers import DESTINATION_HEADER
from schemas.retry import RetryRecord
from streams.metrics import Metrics
from streams.retry import RetryHandler
from tests.support.pipeline import envelope
from tests.unit.streams.records import TOPICS, record

TP = TopicPartition(TOPICS.retry("a"), 0)
DELAY, JITTER = 10.0, 0.2


def retry_handler(metrics: Metrics | None = None) -> RetryHandler:
    return RetryHandler(
        tier="a",
        topics=TOPICS,
        metrics=Metrics() if metrics is None else metrics,
        delay_seconds=DELAY,
        jitter=JITTER,
        providers=("stripe",),
    )


def retry_record(
    provider: str, event_id: str, not_before: datetime, written: datetime, offset: int
) -> ConsumerRecord[bytes, bytes]:
    item = envelope(provider, event_id)
    value = RetryRecord(tier="a", not_before=not_before, destination="hook", envelope=item)
    return record(
        value.model_dump_json().encode(),
        key=item.key.encode(),
        offset=offset,
        tp=TP,
        timestamp=int(written.timestamp() * 1000),
    )


async def test_a_retry_for_a_provider_no_longer_configured_is_dead_lettered_at_once() -> None:
    now = datetime.now(UTC)
    metrics = Metrics()
    records = [
        retry_record("gone", "e1", now + timedelta(seconds=5), now, 0),
        retry_record("stripe", "e2", now - timedelta(seconds=1), now, 1),
    ]
    outcome = await retry_handler(metrics).handle({TP: records})
    assert [(o.topic, o.key) for o in outcome.records] == [
        (TOPICS.dlq, b"gone:e1"),
        (TOPICS.ready("stripe"), b"stripe:e2"),
    ]
    dead = DeadLetter.model_validate_json(outcome.records[0].value or b"")
    assert (dead.reason, dead.destination) == ("permanent", "hook")
    assert (dead.final_error.error_class, dead.final_error.stage) == ("unknown_provider", "retry")
    assert outcome.records[0].origin == (TP.topic, TP.partition, 0)
    assert not outcome.stop_at
    assert metrics["retry.a.unknown_provider"] == 1


@settings(max_examples=50, deadline=None)
@given(ahead=st.floats(min_value=DELAY * (1 + JITTER) + 1, max_value=10 * 365 * 24 * 3600.0))
def test_no_record_waits_past_its_tier_longest_wait_from_when_it_was_written(ahead: float) -> None:
    now = datetime.now(UTC)
    written = now - timedelta(seconds=DELAY * (1 + JITTER) + 0.5)  # its tier's longest wait has passed
    records = [
        retry_record("stripe", "later", now + timedelta(seconds=ahead), written, 0),
        retry_record("stripe", "due", now - timedelta(seconds=1), written, 1),
    ]
    metrics = Metrics()
    outcome = asyncio.run(retry_handler(metrics).handle({TP: records}))
    assert [(o.key, dict(o.headers)) for o in outcome.records] == [
        (b"stripe:later", {DESTINATION_HEADER: b"hook"}),
        (b"stripe:due", {DESTINATION_HEADER: b"hook"}),
    ]
    assert metrics["retry.a.cut_short"] == 1


async def test_a_record_written_just_now_waits_at_most_its_tier_longest_wait() -> None:
    now = datetime.now(UTC)
    records = [retry_record("stripe", "later", now + timedelta(days=365), now, 7)]
    outcome = await retry_handler().handle({TP: records})
    assert outcome.records == []
    assert outcome.stop_at == {TP: 7}
    wait = outcome.resume_at[TP] - asyncio.get_running_loop().time()
    assert wait == pytest.approx(DELAY * (1 + JITTER), abs=1)
