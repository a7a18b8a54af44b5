"""Pipeline stats for operators: the queues (consumer lag) and what fell out (dead letters, quarantine).

The queues of this system are its consumer groups: for every group of :mod:`streams.worker` and the
topic it drains, lag is the number of committed records after the group's committed offset, per
partition (a partition the group never committed counts from its beginning offset).

That is not end offset minus committed offset. Every transaction leaves a commit marker, a control
record with an offset of its own, after its last record; a transactional consumer commits the last
record + 1, so a partition at rest keeps end - committed = 1 forever (48 on a drained flood), and
aborted records count too. Kafka offers no call that counts data records in a range, and aiokafka
exposes no batch headers, so :func:`consumer_lag` reads them: one ``read_committed`` consumer, every
partition with a gap assigned and positioned at its committed offset, fetched together (one request
per broker a round). Control batches and aborted records are skipped and the position moves past
them, so a partition at rest costs one fetch of its marker and shows 0. The reading is bounded: gaps
are read smallest first while their offsets add up to ``exact_budget``, within ``timeout``; a larger
gap counts its offsets (markers included, at most one per transaction: an upper bound, ``exact`` is
False), which at that size is the order of magnitude an operator needs.

The health score folds lag and dead-letter growth into one number for dashboards.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from pydantic import SerializerFunctionWrapHandler, ValidationError, computed_field, model_serializer
from pydantic.dataclasses import dataclass as pydantic_dataclass

from schemas.deadletter import QuarantineRecord
from schemas.topics import PipelineTopics, QueueGroup
from services.kafka import clients
from services.kafka.clients import KafkaTarget
from services.kafka.internals import refresh_metadata
from services.operators.dlq_index import DlqIndex
from services.operators.reader import OPERATOR_CLIENT_ID, read_snapshot
from services.operators.views import IsoTime

__all__ = [
    "EXACT_BUDGET",
    "HealthThresholds",
    "PartitionLag",
    "PipelineStats",
    "collect_stats",
    "consumer_lag",
    "health_score",
]


EXACT_BUDGET = 10_000
"""Offsets past committed offsets that one lag reading counts record by record (smallest gaps first)."""


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None
    end: int
    """The last stable offset: where ``read_committed`` readers stop (commit markers included)."""
    lag: int
    """Committed records after ``committed`` (control records and aborted records not counted)."""
    exact: bool = True
    """False when the gap was too large to read: then ``lag`` counts offsets, an upper bound."""


@dataclass(frozen=True)
class HealthThresholds:
    """Below ``*_warn`` nothing is deducted; at ``*_critical`` that half of the score is gone."""

    lag_warn: int = 1_000
    lag_critical: int = 100_000
    dead_warn: int = 10
    dead_critical: int = 1_000


def _penalty(value: int, warn: int, critical: int) -> float:
    if value <= warn:
        return 0.0
    if value >= critical or critical <= warn:
        return 50.0
    return 50.0 * (value - warn) / (critical - warn)


def health_score(total_lag: int, dead_in_window: int, thresholds: HealthThresholds | None = None) -> int:
    """100 is calm; 0 means both lag and dead-letter growth are at or past their critical levels."""
    t = thresholds or HealthThresholds()
    lost = _penalty(total_lag, t.lag_warn, t.lag_critical) + _penalty(
        dead_in_window, t.dead_warn, t.dead_critical
    )
    return max(0, min(100, round(100 - lost)))


async def consumer_lag(
    bootstrap: KafkaTarget,
    queues: list[QueueGroup],
    *,
    exact_budget: int = EXACT_BUDGET,
    timeout: float = 10.0,
) -> list[PartitionLag]:
    """Lag per group, topic and partition; topics that do not exist yet are left out."""
    admin = clients.admin(bootstrap, client_id=OPERATOR_CLIENT_ID)
    consumer = clients.consumer(
        bootstrap,
        client_id=OPERATOR_CLIENT_ID,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,  # a partition read to its end answers fast: nothing new is awaited
    )
    await admin.start()
    await consumer.start()
    try:
        await refresh_metadata(consumer)  # metadata for every topic, once
        tps = {
            queue.topic: [
                TopicPartition(queue.topic, p)
                for p in sorted(consumer.partitions_for_topic(queue.topic) or ())
            ]
            for queue in queues
        }
        every = [tp for group in tps.values() for tp in group]
        if not every:
            return []
        ends, begins = await asyncio.gather(consumer.end_offsets(every), consumer.beginning_offsets(every))
        starts: dict[tuple[str, TopicPartition], tuple[int | None, int]] = {}
        for queue in queues:
            if not tps[queue.topic]:
                continue
            committed = await _committed(admin, queue.group, tps[queue.topic])
            for tp in tps[queue.topic]:
                meta = committed.get(tp)
                offset = meta.offset if meta is not None and meta.offset >= 0 else None
                # Below the log start the records are gone: the group resumes at the beginning.
                starts[(queue.group, tp)] = (offset, max(offset if offset is not None else 0, begins[tp]))
        ranges = _ranges_to_read(starts, ends, exact_budget)
        read = await _read_offsets(consumer, ranges, timeout) if ranges else {}
        rows: list[PartitionLag] = []
        for (group, tp), (offset, start) in starts.items():
            end = ends[tp]
            if start >= end:
                lag, exact = 0, True
            elif tp in read:
                found, position = read[tp]
                exact = position >= end
                lag = sum(1 for o in found if o >= start) + max(0, end - max(position, start))
            else:
                lag, exact = end - start, False
            rows.append(PartitionLag(group, tp.topic, tp.partition, offset, end, lag, exact))
        return rows
    finally:
        await consumer.stop()
        with contextlib.suppress(Exception):
            await admin.close()


def _ranges_to_read(
    starts: dict[tuple[str, TopicPartition], tuple[int | None, int]],
    ends: dict[TopicPartition, int],
    budget: int,
) -> dict[TopicPartition, tuple[int, int]]:
    """Per partition with a gap, ``(from, to)`` offsets to count, smallest gaps first within ``budget``
    (gaps of one offset, a partition at rest, always: exactly 0 there is what an alert waits for).

    Several groups reading one partition share one read from the smallest of their offsets.
    """
    lowest: dict[TopicPartition, int] = {}
    for (_, tp), (_, start) in starts.items():
        if start < ends[tp]:
            lowest[tp] = min(start, lowest.get(tp, start))
    chosen: dict[TopicPartition, tuple[int, int]] = {}
    spent = 0
    for tp, start in sorted(lowest.items(), key=lambda item: ends[item[0]] - item[1]):
        gap = ends[tp] - start
        if gap == 1:  # a partition at rest (or one record): always read, at no cost worth counting
            chosen[tp] = (start, ends[tp])
            continue
        if spent + gap > budget:
            break
        chosen[tp] = (start, ends[tp])
        spent += gap
    return chosen


async def _read_offsets(
    consumer: AIOKafkaConsumer, ranges: dict[TopicPartition, tuple[int, int]], timeout: float
) -> dict[TopicPartition, tuple[list[int], int]]:
    """The offsets of committed data records in each ``[from, to)``, and how far the read got.

    All partitions are fetched together; a partition is paused once its position reaches ``to``
    (aiokafka moves the position past control batches and aborted records it skips).
    """
    consumer.assign(list(ranges))
    for tp, (start, _) in ranges.items():
        consumer.seek(tp, start)
    found: dict[TopicPartition, list[int]] = {tp: [] for tp in ranges}
    positions = {tp: start for tp, (start, _) in ranges.items()}
    active = set(ranges)
    deadline = time.monotonic() + timeout
    while active and time.monotonic() < deadline:
        batches = await consumer.getmany(*active, timeout_ms=100, max_records=10_000)
        for tp, records in batches.items():
            end = ranges[tp][1]
            found[tp].extend(r.offset for r in records if r.offset < end)
        for tp in list(active):
            positions[tp] = await consumer.position(tp)
            if positions[tp] >= ranges[tp][1]:
                active.discard(tp)
                consumer.pause(tp)
    return {tp: (found[tp], positions[tp]) for tp in ranges}


async def _committed(
    admin: AIOKafkaAdminClient, group: str, tps: list[TopicPartition], timeout: float = 10.0
) -> dict[TopicPartition, OffsetAndMetadata]:
    """The group's committed offsets; waits out retriable errors (a coordinator still loading)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            found: dict[TopicPartition, OffsetAndMetadata] = await admin.list_consumer_group_offsets(
                group, partitions=tps
            )
            return found
        except KafkaError as exc:
            if not exc.retriable or loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)  # the broker announces nothing: poll, bounded by the deadline


_STATS_JSON_ORDER = (
    "since",
    "until",
    "health",
    "thresholds",
    "lag_total",
    "lag_by_group",
    "lag",
    "dead_by_provider",
    "quarantined_by_provider",
)


@pydantic_dataclass
class PipelineStats:
    """What ``breakwater stats`` shows and ``GET /stats`` answers (written by ``views.to_json``)."""

    since: IsoTime | None
    until: IsoTime | None
    lag: list[PartitionLag]
    dead_by_provider: dict[str, int]
    quarantined_by_provider: dict[str, int]
    health: int
    thresholds: HealthThresholds = field(default_factory=HealthThresholds)

    @computed_field  # type: ignore[prop-decorator]  # mypy refuses decorators over @property (pydantic's docs)
    @property
    def lag_total(self) -> int:
        return sum(row.lag for row in self.lag)

    @computed_field  # type: ignore[prop-decorator]  # as above
    @property
    def lag_by_group(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for row in self.lag:
            totals[row.group] += row.lag
        return dict(totals)

    @model_serializer(mode="wrap")
    def _in_order(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The keys in the order the API has always written them: the summary first, the rows after."""
        data: dict[str, Any] = handler(self)
        return {name: data[name] for name in _STATS_JSON_ORDER}


def _within(at: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or at >= since) and (until is None or at <= until)


async def quarantined_by_provider(
    bootstrap: KafkaTarget, topic: str, since: datetime | None, until: datetime | None, max_records: int
) -> dict[str, int]:
    """Quarantined records per provider (the key's ``provider:`` part; ``?`` when there is none)."""
    snapshot = await read_snapshot(bootstrap, topic, max_records=max_records)
    counts: Counter[str] = Counter()
    for record in snapshot.records:
        try:
            quarantined = QuarantineRecord.model_validate_json(record.value or b"")
        except ValidationError:
            continue
        if _within(quarantined.quarantined_at, since, until):
            key = (quarantined.key or b"").decode("utf-8", "replace")
            counts[key.split(":", 1)[0] if ":" in key else "?"] += 1
    return dict(sorted(counts.items()))


async def collect_stats(
    bootstrap: KafkaTarget,
    topics: PipelineTopics,
    index: DlqIndex,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    thresholds: HealthThresholds | None = None,
    max_records: int = 200_000,
) -> PipelineStats:
    """Lag now, and dead letters (any state) and quarantined records per provider in the range."""
    thresholds = thresholds or HealthThresholds()
    lag, quarantined = await asyncio.gather(
        consumer_lag(bootstrap, topics.queues()),
        quarantined_by_provider(bootstrap, topics.quarantine, since, until, max_records),
    )
    dead: Counter[str] = Counter(
        e.dead.envelope.provider for e in index.entries.values() if _within(e.dead.dead_at, since, until)
    )
    score = health_score(sum(row.lag for row in lag), sum(dead.values()), thresholds)
    return PipelineStats(since, until, lag, dict(sorted(dead.items())), quarantined, score, thresholds)
