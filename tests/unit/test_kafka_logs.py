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


def test_connection_errors_of_an_outage_fold_into_one_line_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    from services.kafka.logs import UNREACHABLE_TEMPLATES, FoldedUnreachable, _Tally

    clock = Clock()
    tally = _Tally()
    loggers = {name: logging.getLogger(name) for name in UNREACHABLE_TEMPLATES}
    filters = {name: FoldedUnreachable(name, tally, 60.0, clock) for name in loggers}
    for name, logger in loggers.items():
        logger.addFilter(filters[name])
    try:
        with caplog.at_level(logging.INFO):
            for second in range(150):  # 150 s of outage, ~900 lines a second in the real one
                clock.now = float(second)
                for _ in range(5):
                    loggers["aiokafka"].error("Unable connect to node with id %s: %s", 1, "refused")
                    loggers["aiokafka.consumer.fetcher"].error("Failed fetch messages from %s: %s", 1, "x")
                loggers["aiokafka.consumer.group_coordinator"].error("Heartbeat failed: %r", "kept")
            clock.now = 400.0  # quiet, then a new outage: its onset shows at once
            loggers["aiokafka"].error("Unable to update metadata from %s", [1])
    finally:
        for name, logger in loggers.items():
            logger.removeFilter(filters[name])
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    kept = [line for line in lines if line.startswith("Heartbeat failed")]
    folded = [line for line in lines if not line.startswith("Heartbeat failed")]
    assert len(kept) == 150  # other messages pass untouched
    assert len(folded) == 4, folded  # onset, two summaries (at 60 s and 120 s), the next onset
    assert "more such lines are folded" in folded[0] and "more such lines are folded" in folded[3]
    assert "600 connection errors in the last 60s" in folded[1]
    assert (
        "Unable connect to node with id: 300" in folded[1] and "Failed fetch messages from: 300" in folded[1]
    )
