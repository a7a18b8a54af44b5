"""Listed hostile records, one per test, so each defect fails on its own and names itself.

Each writes a handful of records, runs a worker in this event loop and asserts: the worker is still
running, and each record ended as it must (delivered, dead-lettered, quarantined with its coordinates).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.retry import RetryRecord
from schemas.signing import EnvelopeSigner
from streams.topics import pipeline_topics
from tests.support.hostile import (
    InProcessWorker,
    RawRecord,
    default_partition,
    produce_to,
    topic_max_bytes,
    wrong_partition,
)
from tests.support.pipeline import (
    CommittedReader,
    create_topics,
    envelope,
    pipeline_config,
    settings_of,
)
from tests.support.waiting import until

pytestmark = pytest.mark.kafka
WAIT = 20.0


@pytest.fixture
def config(kafka_bootstrap: str, unique: Callable[[str], str], tmp_path: Path) -> dict[str, Any]:
    return pipeline_config(kafka_bootstrap, unique("hl"), tmp_path / "state")


def coordinates(reader: CommittedReader) -> list[tuple[str, int, int]]:
    out = []
    for record in reader.records:
        doc = json.loads(record.value or b"{}")
        out.append((doc.get("source_topic"), doc.get("source_partition"), doc.get("source_offset")))
    return out


async def outputs(
    settings: Any, worker: InProcessWorker, done: Callable[[dict[str, CommittedReader]], bool]
) -> dict[str, CommittedReader]:
    """Read events, dead letters and quarantine until ``done`` (or the worker fails, or WAIT passes)."""
    names = pipeline_topics(settings)
    topics = {"events": names.events, "dlq": names.dlq, "quarantine": names.quarantine}
    bootstrap = settings.kafka.servers
    readers = {name: CommittedReader(bootstrap, topic) for name, topic in topics.items()}
    for reader in readers.values():
        await reader.__aenter__()
    try:

        async def check() -> bool:
            for reader in readers.values():
                await reader.poll()
            return done(readers) or worker.error() is not None

        with contextlib.suppress(AssertionError):
            await until(check, timeout=WAIT, what="the records' outputs")
        for reader in readers.values():
            await reader.settle(1.0)
    finally:
        for reader in readers.values():
            await reader.__aexit__(None, None, None)
    assert worker.error() is None, f"the worker stopped because of a record: {worker.error()!r}"
    return readers


def retry_value(provider: str, event_id: str, delay: float, destination: str = "events") -> bytes:
    record = RetryRecord(
        tier="t1",
        not_before=datetime.now(UTC) + timedelta(seconds=delay),
        destination=destination,
        envelope=envelope(provider, event_id),
    )
    return record.model_dump_json().encode()


async def test_an_unreadable_record_on_a_ready_topic_is_quarantined_not_dropped(
    config: dict[str, Any],
) -> None:
    """Dispatch trusts ready topics; a record there that is no envelope must still leave a trace."""
    settings = settings_of(config)
    topics = await create_topics(settings)
    good = envelope("stripe", "evt-after-junk")
    junk: list[RawRecord] = [
        (b"stripe:x", b"\x00\x01 not an envelope", [], 0),
        (b"stripe:y", b'{"schema_version": 1', [], 0),
    ]
    placed = await produce_to(settings.kafka.servers, topics.ready("stripe"), junk)
    await produce_to(
        settings.kafka.servers,
        topics.ready("stripe"),
        [(b"stripe:evt-after-junk", good.model_dump_json().encode(), [], 0)],
    )
    async with InProcessWorker(settings) as worker:
        got = await outputs(
            settings, worker, lambda r: len(r["events"].records) >= 1 and len(r["quarantine"].records) >= 2
        )
    assert [r.key for r in got["events"].records] == [b"stripe:evt-after-junk"]
    assert sorted(coordinates(got["quarantine"])) == sorted(
        (topics.ready("stripe"), p, o) for p, o in placed
    ), f"unreadable ready records left no trace (dispatch.invalid={worker.metrics['dispatch.invalid']})"


async def test_an_unreadable_record_on_a_retry_topic_is_quarantined_not_dropped(
    config: dict[str, Any],
) -> None:
    settings = settings_of(config)
    topics = await create_topics(settings)
    junk: list[RawRecord] = [
        (b"stripe:x", b"\xff junk", [], 0),
        (b"stripe:y", envelope("stripe", "y").model_dump_json().encode(), [], 0),
    ]
    placed = await produce_to(settings.kafka.servers, topics.retry("t1"), junk)
    await produce_to(
        settings.kafka.servers, topics.retry("t1"), [(b"stripe:due", retry_value("stripe", "due", 0), [], 0)]
    )
    async with InProcessWorker(settings) as worker:
        got = await outputs(
            settings, worker, lambda r: len(r["events"].records) >= 1 and len(r["quarantine"].records) >= 2
        )
    assert [r.key for r in got["events"].records] == [b"stripe:due"]
    assert sorted(coordinates(got["quarantine"])) == sorted((topics.retry("t1"), p, o) for p, o in placed), (
        "unreadable retry records left no trace"
    )


async def test_a_retry_for_a_provider_no_longer_configured_does_not_stop_the_worker(
    config: dict[str, Any],
) -> None:
    """A provider removed from the configuration while its retries wait: its ready topic is gone."""
    settings = settings_of(config)
    topics = await create_topics(settings)
    await produce_to(
        settings.kafka.servers,
        topics.retry("t1"),
        [
            (b"gone:e1", retry_value("gone", "e1", 0), [], 0),
            (b"stripe:e2", retry_value("stripe", "e2", 0), [], 0),
        ],
    )
    async with InProcessWorker(settings) as worker:
        got = await outputs(
            settings,
            worker,
            lambda r: (
                len(r["events"].records) >= 1 and len(r["dlq"].records) + len(r["quarantine"].records) >= 1
            ),
        )
    assert [r.key for r in got["events"].records] == [b"stripe:e2"]
    assert len(got["dlq"].records) + len(got["quarantine"].records) == 1, "the retry for 'gone' left no trace"


async def test_a_retry_due_far_in_the_future_does_not_hold_back_due_retries_behind_it(
    config: dict[str, Any],
) -> None:
    """dispatch honours any Retry-After (an HTTP date a year away parks a record in the last tier until
    then); the retry stage pauses the whole partition at its head, so every record behind it waits too."""
    settings = settings_of(config)
    topics = await create_topics(settings)
    await produce_to(
        settings.kafka.servers,
        topics.retry("t2"),
        [
            (b"stripe:later", retry_value("stripe", "later", 365 * 24 * 3600), [], 1),
            (b"stripe:due", retry_value("stripe", "due", 0), [], 1),
        ],
    )
    # The retry stage cuts any wait to the tier's longest one (t2: 0.6 s x 1.1) from the record's
    # timestamp: the year-away record goes on after that instead of pausing its partition for a year.
    async with InProcessWorker(settings) as worker:
        got = await outputs(settings, worker, lambda r: len(r["events"].records) >= 2)
    assert sorted(r.key for r in got["events"].records) == [b"stripe:due", b"stripe:later"], (
        "a due retry waited behind one due in a year"
    )


@pytest.mark.parametrize("value", [None, b"\xff\xfe"], ids=["null", "non-utf8"])
async def test_a_bad_destination_header_on_a_ready_record_does_not_stop_dispatch(
    config: dict[str, Any], value: bytes | None
) -> None:
    settings = settings_of(config)
    topics = await create_topics(settings)
    first = envelope("stripe", "with-bad-header")
    second = envelope("stripe", "behind-it")
    await produce_to(
        settings.kafka.servers,
        topics.ready("stripe"),
        [
            (b"stripe:with-bad-header", first.model_dump_json().encode(), [("bw-destination", value)], 0),
            (b"stripe:behind-it", second.model_dump_json().encode(), [], 0),
        ],
    )
    async with InProcessWorker(settings) as worker:
        got = await outputs(settings, worker, lambda r: sum(len(x.records) for x in r.values()) >= 2)
    keys = [r.key for r in got["events"].records]
    assert b"stripe:behind-it" in keys
    traces = keys.count(b"stripe:with-bad-header") + len(got["dlq"].records) + len(got["quarantine"].records)
    assert traces == 1


async def test_a_null_header_on_a_poison_record_is_quarantined(config: dict[str, Any]) -> None:
    settings = settings_of(config)
    topics = await create_topics(settings)
    placed = await produce_to(
        settings.kafka.servers,
        topics.inbound,
        [(b"x", b"unsigned", [("x-null", None), ("x-bin", b"\xff")], 0)],
    )
    async with InProcessWorker(settings) as worker:
        got = await outputs(settings, worker, lambda r: len(r["quarantine"].records) >= 1)
    assert coordinates(got["quarantine"]) == [(topics.inbound, *placed[0])]


async def test_a_resend_on_another_partition_is_still_a_duplicate(config: dict[str, Any]) -> None:
    """librdkafka's default partitioner (crc32) puts a resend of the same key on another partition."""
    settings = settings_of(config)
    topics = await create_topics(settings)
    signer = EnvelopeSigner.of(settings.signing)
    key = b"stripe:resent"
    records = []
    for where in (default_partition(key), wrong_partition(key)):
        value = envelope("stripe", "resent").model_dump_json().encode()
        records.append((key, value, list(signer.sign(value)), where))
    await produce_to(settings.kafka.servers, topics.inbound, records)
    async with InProcessWorker(settings) as worker:
        got = await outputs(settings, worker, lambda r: len(r["events"].records) >= 2)
    assert [r.key for r in got["events"].records] == [key]


async def test_a_poison_record_near_the_topic_limit_is_quarantined_and_the_flow_goes_on(
    config: dict[str, Any],
) -> None:
    """Its quarantine copy (base64, plus fields) cannot fit the topic: a bounded stand-in must."""
    settings = settings_of(config)
    topics = await create_topics(settings)
    limit = await topic_max_bytes(settings.kafka.servers, topics.inbound)
    signer = EnvelopeSigner.of(settings.signing)
    good = envelope("stripe", "after-the-big-one")
    good_value = good.model_dump_json().encode()
    placed = await produce_to(
        settings.kafka.servers,
        topics.inbound,
        [
            (b"big", b"\x00" * (limit - 1024), [], 0),
            (good.key.encode(), good_value, list(signer.sign(good_value)), 0),
        ],
    )
    async with InProcessWorker(settings) as worker:
        got = await outputs(
            settings, worker, lambda r: len(r["events"].records) >= 1 and len(r["quarantine"].records) >= 1
        )
    assert [r.key for r in got["events"].records] == [good.key.encode()]
    assert coordinates(got["quarantine"]) == [(topics.inbound, *placed[0])]
