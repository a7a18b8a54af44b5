"""A worker the group dropped while it held a batch (a live zombie) must not commit that batch.

Loop A takes the first batch and stalls in its handler past the rebalance timeout; the group gives every
partition to loop B, which copies all records. Then A wakes up and tries to commit: the group fences it
(KIP-447, :mod:`services.kafka.group_fencing`), the transaction is aborted and the output holds each
record once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.topics import TopicSpec
from services.kafka.admin import ensure_topics
from services.kafka.group_fencing import read_stable_offsets
from streams.eos import LoopConfig, TransactionalLoop
from streams.eos_types import Batch, Out, Outcome, StatelessHandler
from tests.support.pipeline import CommittedReader
from tests.support.waiting import until

pytestmark = pytest.mark.kafka
RECORDS = 300
PARTITIONS = 3


class Copy(StatelessHandler):
    """Copies every record to ``output``; with ``stall``, the first batch waits until ``wake`` is set."""

    def __init__(self, output: str, *, stall: bool) -> None:
        self.output = output
        self.stall = stall
        self.stalled = asyncio.Event()
        self.wake = asyncio.Event()

    async def handle(self, batch: Batch) -> Outcome:
        if self.stall:
            self.stall = False
            self.stalled.set()
            await self.wake.wait()
        return Outcome(
            records=[Out(self.output, r.key, r.value, follow=tp) for tp, rs in batch.items() for r in rs]
        )


@contextlib.asynccontextmanager
async def running(loop: TransactionalLoop) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def loop_config(bootstrap: str, name: str, group: str, source: str) -> LoopConfig:
    return LoopConfig(
        name=name,
        bootstrap=bootstrap,
        group_id=group,
        transactional_id=f"{group}-{name}",
        topics=(source,),
        max_records=RECORDS,
        session_timeout_ms=6_000,
        max_poll_interval_ms=3_000,  # the rebalance timeout: how long the group waits for a stalled member
    )


async def test_a_worker_dropped_mid_batch_cannot_commit_it(
    kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    source, output, group = unique("zombie-in"), unique("zombie-out"), unique("zombie")
    await ensure_topics(kafka_bootstrap, [TopicSpec(source, PARTITIONS, 1), TopicSpec(output, PARTITIONS, 1)])
    async with AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all") as producer:
        for i in range(RECORDS):
            await producer.send(source, key=b"k%d" % i, value=b"v%d" % i)
        await producer.flush()

    stalled = Copy(output, stall=True)
    zombie = TransactionalLoop(loop_config(kafka_bootstrap, "a", group, source), stalled)
    survivor = TransactionalLoop(loop_config(kafka_bootstrap, "b", group, source), Copy(output, stall=False))
    async with running(zombie), CommittedReader(kafka_bootstrap, output) as out:
        await asyncio.wait_for(stalled.stalled.wait(), 30)
        async with running(survivor):
            await out.until(lambda r: len(r.records) >= RECORDS, 60, "the survivor's copy")
            stalled.wake.set()
            await until(
                lambda: zombie.fenced + zombie.committed >= 1, timeout=30, what="the stalled loop's commit"
            )
            await out.settle(2.0)
    copies = Counter(out.keys())
    assert set(copies) == {b"k%d" % i for i in range(RECORDS)}
    assert [key for key, n in copies.items() if n > 1] == []
    assert (zombie.fenced, zombie.committed) == (1, 0)


async def test_committed_offsets_are_read_only_once_the_transaction_holding_them_settles(
    kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    """A new owner must not start from the offset before an old owner's transaction still open."""
    source, group = unique("stable-in"), unique("stable")
    await ensure_topics(kafka_bootstrap, [TopicSpec(source, 1, 1)])
    tp = TopicPartition(source, 0)
    async with AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=unique("stable-txn")
    ) as old_owner:
        await old_owner.begin_transaction()
        await old_owner.send_and_wait(source, b"x")
        await old_owner.send_offsets_to_transaction({tp: 1}, group)  # not committed yet

        new_owner = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group)
        await new_owner.start()
        try:
            read_stable_offsets(new_owner)
            read = asyncio.create_task(new_owner._coordinator.fetch_committed_offsets({tp}))
            done, _ = await asyncio.wait({read}, timeout=1.0)  # nothing to await: it must keep waiting
            assert not done, f"read {read.result()} while the transaction holding it was open"
            await old_owner.commit_transaction()
            committed = await asyncio.wait_for(read, 10)
            assert committed[tp].offset == 1
        finally:
            await new_owner.stop()
