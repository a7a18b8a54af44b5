"""aiokafka's NOT_ENOUGH_REPLICAS retry warnings are folded, counted and explained, never lost."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import NotEnoughReplicasError, RequestTimedOutError

from services.kafka.logs import SENDER_LOGGER, FoldedNotEnoughReplicas

sender = logging.getLogger(SENDER_LOGGER)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Iterator[Clock]:
    clock = Clock()
    folded = FoldedNotEnoughReplicas(interval=60.0, clock=clock)
    # a test that ran a command in process (configure_logging) left the real, wall-clock filter installed
    installed, sender.filters = sender.filters, [folded]
    try:
        yield clock
    finally:
        sender.filters = installed


def retried(topic: str, error: type[Exception]) -> None:
    """What aiokafka's sender logs before it re-enqueues a batch (aiokafka/producer/sender.py)."""
    tp = TopicPartition(topic, 0)
    sender.warning("Got error produce response on topic-partition %s, retrying. Error: %s", tp, error)


def test_retries_are_reported_once_a_minute_with_their_count_and_topics(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        for second in range(5):
            clock.now = second
            retried("bw.webhooks.events" if second % 2 else "bw.webhooks.ready.flaky", NotEnoughReplicasError)
        assert [r.name for r in caplog.records] == ["breakwater.kafka"]  # the onset, at once
        assert "NOT_ENOUGH_REPLICAS to 1 produce request(s) on bw.webhooks.ready.flaky" in caplog.text
        caplog.clear()
        clock.now = 61.0
        retried("bw.webhooks.events", NotEnoughReplicasError)
    (summary,) = caplog.records
    assert summary.levelno == logging.WARNING
    message = summary.getMessage()
    assert "to 5 produce request(s) in the last 61s on bw.webhooks.events, bw.webhooks.ready.flaky" in message
    assert "KAFKA-15459" in message and "min.insync.replicas" in message


def test_other_produce_errors_are_logged_as_aiokafka_logs_them(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        retried("bw.webhooks.events", RequestTimedOutError)
        sender.warning("Got error produce response: %s", "connection reset")
    assert [r.name for r in caplog.records] == [SENDER_LOGGER, SENDER_LOGGER]
