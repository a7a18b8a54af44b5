"""Consumer lag on the real broker: 0 once a transactional pipeline drained, N with N records pending
(issue #13, item 11: each commit marker used to count as one record of lag, forever)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from schemas.topics import dispatch_role
from services.operators.stats import PartitionLag, consumer_lag
from streams.topics import pipeline_topics
from tests.support.pipeline import (
    CommittedReader,
    create_topics,
    envelope,
    pipeline_config,
    produce,
    running_worker,
    settings_of,
)
from tests.support.waiting import until

pytestmark = pytest.mark.kafka


async def transactions(
    bootstrap: str, topic: str, partition: int, sizes: list[int], *, abort: bool = False
) -> None:
    """One transaction per size on ``partition``, committed (or all aborted)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-{partition}-{abort}")
    await producer.start()
    try:
        for size in sizes:
            await producer.begin_transaction()
            for n in range(size):
                await producer.send_and_wait(topic, b"{}", key=f"k{n}".encode(), partition=partition)
            if abort:
                await producer.abort_transaction()
            else:
                await producer.commit_transaction()
    finally:
        await producer.stop()


async def test_a_drained_transactional_pipeline_shows_no_lag_and_pending_records_count_exactly(
    kafka_bootstrap: str, unique: Callable[[str], str], tmp_path: Path
) -> None:
    settings = settings_of(pipeline_config(kafka_bootstrap, unique("lag"), tmp_path / "state"))
    topics = await create_topics(settings)
    queues = pipeline_topics(settings).queues()
    sent = [envelope("stripe" if n % 2 else "github", f"evt_lag_{n}") for n in range(120)]
    rows: list[PartitionLag] = []

    async def drained() -> bool:
        nonlocal rows
        rows = await consumer_lag(kafka_bootstrap, queues)
        return sum(row.lag for row in rows) == 0

    async with CommittedReader(kafka_bootstrap, topics.name("webhooks.events")) as events:
        await produce(settings, sent[:60])
        async with running_worker(settings):
            await events.until(lambda r: len(r.records) >= 60, 60, "first half delivered")
            await produce(settings, sent[60:])  # a second round of transactions on every ready topic
            await events.until(lambda r: len(r.records) >= 120, 60, "all delivered")
            await until(drained, timeout=30, what="lag 0 on every partition of every queue")

    ready = [row for row in rows if row.group.endswith(("dispatch-stripe", "dispatch-github"))]
    assert len(ready) == 8 and all(row.exact for row in rows)
    # The case this is about: committed offsets sit before the last commit marker of their partition.
    assert all(row.committed is not None and row.end - row.committed >= 1 for row in ready), ready
    assert [row for row in rows if row.lag != 0] == []

    # Pending while no worker runs: 7 records in three transactions, beside 5 aborted ones.
    ready_topic = topics.ready("stripe")
    await transactions(kafka_bootstrap, ready_topic, 2, [3, 2, 2])
    await transactions(kafka_bootstrap, ready_topic, 2, [5], abort=True)
    await transactions(kafka_bootstrap, ready_topic, 3, [1])
    lag = {(row.group, row.partition): row for row in await consumer_lag(kafka_bootstrap, queues)}
    group = pipeline_topics(settings).group(dispatch_role("stripe"))
    assert (lag[(group, 2)].lag, lag[(group, 3)].lag) == (7, 1)
    assert lag[(group, 2)].end - (lag[(group, 2)].committed or 0) >= 7 + 4 + 5  # 4 markers, 5 aborted
    assert sum(row.lag for row in lag.values()) == 8

    # Past the budget a gap is counted in offsets and says so; a lone marker is still read.
    bounded = {(r.group, r.partition): r for r in await consumer_lag(kafka_bootstrap, queues, exact_budget=3)}
    assert bounded[(group, 3)].exact and bounded[(group, 3)].lag == 1  # gap 3: old marker, 1 record, marker
    wide = bounded[(group, 2)]
    assert not wide.exact and wide.lag == wide.end - (wide.committed or 0)
    assert all(r.lag == 0 for key, r in bounded.items() if key[0] != group)


async def test_a_partition_written_in_many_small_transactions_reads_in_one_pass(
    kafka_bootstrap: str, unique: Callable[[str], str], tmp_path: Path
) -> None:
    """500 one-record transactions pending: 500, not 1,000 offsets (every other one a marker)."""
    settings = settings_of(pipeline_config(kafka_bootstrap, unique("lagmany"), tmp_path / "state"))
    topics = await create_topics(settings)
    await transactions(kafka_bootstrap, topics.ready("github"), 0, [1] * 500)
    started = time.monotonic()
    rows = await consumer_lag(kafka_bootstrap, pipeline_topics(settings).queues())
    took = time.monotonic() - started
    (row,) = [r for r in rows if r.lag]
    assert (row.partition, row.end, row.lag, row.exact) == (0, 1000, 500, True)
    assert took < 10, took
