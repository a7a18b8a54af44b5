"""Read a topic from the beginning up to its current end, committed records only.

An operator command needs a snapshot, not a stream: the end offsets are taken once at the start (with
``read_committed`` they are the last stable offsets), and the read stops when every partition got
there or ``max_records`` were read, so a busy topic cannot keep a command running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias, Unpack

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from services.kafka import clients
from services.kafka.clients import ConsumerOptions, KafkaTarget
from services.kafka.internals import refresh_metadata

__all__ = ["Snapshot", "read_snapshot", "wait_until_stable"]

log = logging.getLogger(__name__)
Record: TypeAlias = ConsumerRecord  # [bytes, bytes]; aiokafka ships no type hints
OPERATOR_CLIENT_ID = "breakwater-operator"


@dataclass
class Snapshot:
    records: list[Record]
    truncated: bool
    """True when ``max_records`` stopped the read before the end."""


def _committed_reader(bootstrap: KafkaTarget, **options: Unpack[ConsumerOptions]) -> AIOKafkaConsumer:
    """A consumer of committed records only (the boundary's default), in no group: operators read,
    they do not consume (and commit nothing)."""
    return clients.consumer(bootstrap, client_id=OPERATOR_CLIENT_ID, **options)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    found = consumer.partitions_for_topic(topic)
    if not found:
        await refresh_metadata(consumer)  # as tests/support does; no auto-creation
        found = consumer.partitions_for_topic(topic)
    return [TopicPartition(topic, p) for p in sorted(found or ())]


async def read_snapshot(
    bootstrap: KafkaTarget, topic: str, *, max_records: int = 200_000, timeout: float = 30.0
) -> Snapshot:
    """Every committed record of ``topic`` up to its end when called; a missing topic reads empty."""
    consumer = _committed_reader(
        bootstrap,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,  # an idle partition answers fast: a snapshot waits for nothing new
    )
    await consumer.start()
    try:
        return await asyncio.wait_for(_read(consumer, topic, max_records), timeout)
    finally:
        await consumer.stop()


async def _read(consumer: AIOKafkaConsumer, topic: str, max_records: int) -> Snapshot:
    tps = await _partitions(consumer, topic)
    if not tps:
        return Snapshot([], False)
    # End offsets before assigning: an assigned partition's offset reset would queue behind them.
    ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    consumer.assign(tps)  # auto_offset_reset="earliest": every partition starts at its beginning
    records: list[Record] = []
    pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
    while pending and len(records) < max_records:
        batches = await consumer.getmany(*pending, timeout_ms=200, max_records=10_000)
        for tp, batch in batches.items():
            records.extend(r for r in batch if r.offset < ends[tp])
        pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    truncated = bool(pending) or len(records) > max_records
    if truncated:
        log.warning("read of %s stopped at %d records (max_records)", topic, max_records)
    return Snapshot(records[:max_records], truncated)


async def wait_until_stable(
    bootstrap: KafkaTarget,
    written: Mapping[TopicPartition, int],
    *,
    timeout: float = 30.0,
    every: float = 0.05,
) -> bool:
    """Wait until each partition's last stable offset passes the offset written there.

    A transaction's commit is acknowledged before its markers land, so a committed reader asked at
    once can still stop short of it. False when ``timeout`` passed first.
    """
    consumer = _committed_reader(bootstrap)
    try:
        async with asyncio.timeout(timeout):
            await consumer.start()
            while True:
                ends: dict[TopicPartition, int] = await consumer.end_offsets(list(written))
                if all(ends.get(tp, -1) > offset for tp, offset in written.items()):
                    return True
                await asyncio.sleep(every)  # the broker has no call that waits for the markers
    except TimeoutError:
        return False
    finally:
        await consumer.stop()
