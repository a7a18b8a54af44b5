"""Exactly-once consume → process → produce over aiokafka transactions.

Why not faust's own ``processing_guarantee="exactly_once"``: reading faust-streaming 0.15.3
(``faust/transport/consumer.py``, ``TransactionManager``) and issues #177, #323, #517 and #502 shows

* ``TransactionManager.send`` ignores the event being processed and picks the transactional producer
  from the *destination* partition of the key (``{app}-{group}-{p}``), while offsets are committed
  through the producer of the *source* partition: output and offsets land in different transactions,
  so a crash between them duplicates or loses records (#517). When the destination partition is not
  owned by this worker there is no such producer at all and the send fails (#323).
* ``Producer.commit_transaction`` and ``begin_transaction`` log and swallow every error, so a failed
  commit is silently followed by more work in no transaction (#177).
* On rebalance the producers of revoked partitions are stopped without committing or aborting and the
  periodic commit of acked offsets races with sends of events not yet acked (#502): records of an
  unacked event are committed with offsets that do not cover it and are produced again after a restart.
* Table writes reach RocksDB before the transaction commits; after ``kill -9`` the local store holds
  keys whose outputs were aborted, so a re-read event looks like a duplicate and is lost.

Tried on this repository's broker: a minimal faust app (``processing_guarantee="exactly_once"``,
``store="rocksdb://"``, one agent that checks a Table and sends to an output topic) committed 3,000 of
20,000 records in 80 s with no fault at all (``producer buffer full`` throttling), and with ``kill -9``
its ``ProducerBuffer`` crashed with ``IllegalOperation("Can't send messages while not in transaction")``
(table changelog writes sent outside the transaction, as #177 reports) and the agent stopped.

Patching those in place means replacing faust's consumer commit path, its producer routing and its
table recovery; this module is the thin layer that does the one thing needed, the way Kafka's own
transactional examples do: for each fetched batch, hold a lock, process, produce every output, add the
batch's offsets with ``send_offsets_to_transaction`` and commit, all in one transaction (the next batch
is processed while this one commits, but its transaction begins only after). A rebalance waits for the
lock and the commit in flight, so no batch straddles a change of assignment, and a batch fetched under
an older assignment is given back unprocessed (the consumer re-reads it from the committed offset).

The transactional id is stable per worker slot and role (``{app}-{role}-{worker_id}``): a worker
restarted in the same slot fences its dead predecessor and aborts its open transaction at once. A *live*
zombie (a worker the group dropped while it held a batch) is fenced by the group instead:
:mod:`streams.group_fencing` commits the offsets with the generation the batch was fetched under and
reads committed offsets only once stable (KIP-447, which aiokafka lacks). A fenced transaction is
aborted and its batch, and the one processed behind it, are re-read; the worker carries on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from streams.batching import BatchSender, last_offsets
from streams.eos_types import Batch, Handler, Out, Outcome
from streams.group_fencing import (
    GroupFenced,
    Membership,
    fence_offsets_by_generation,
    read_stable_offsets,
    rejoin_after,
)

__all__ = ["Batch", "Handler", "LoopConfig", "Out", "Outcome", "TransactionalLoop"]

log = logging.getLogger(__name__)
PRODUCER_RETRY_BACKOFF_MS = 10
PRODUCER_MAX_BATCH_BYTES = 1_000_000  # below the broker's default message.max.bytes (1 MiB)


@dataclass(frozen=True)
class LoopConfig:
    name: str
    bootstrap: str
    group_id: str
    transactional_id: str
    topics: tuple[str, ...]
    max_records: int = 2000
    transaction_timeout_ms: int = 60_000
    session_timeout_ms: int = 10_000
    max_poll_interval_ms: int = 300_000
    max_partition_fetch_bytes: int = 1 << 20
    """Records prefetched per partition: memory a paused partition holds while it waits."""
    client_id: str = "breakwater-worker"
    fetch_timeout_ms: int = 200


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka's listener is untyped
    def __init__(self, loop: TransactionalLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._loop.lock:  # the batch in flight commits first
            await self._loop.settle()
            self._loop.generation += 1
            await self._loop.handler.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        async with self._loop.lock:
            self._loop.generation += 1
            self._loop._sender.forget_partition_counts()
            await self._loop.wait_until_stable(assigned)
            await self._loop.handler.on_assigned(set(assigned))


class TransactionalLoop:
    """Runs ``handler`` over ``config.topics`` until ``stop`` is set; each batch is one transaction."""

    def __init__(self, config: LoopConfig, handler: Handler) -> None:
        self.config = config
        self.handler = handler
        self.lock = asyncio.Lock()
        self.generation = 0
        self.batches = 0
        self.records = 0
        self.committed = 0
        self.fenced = 0
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=config.bootstrap,
            group_id=config.group_id,
            client_id=f"{config.client_id}-{config.name}",
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_poll_records=config.max_records,
            fetch_max_wait_ms=100,
            session_timeout_ms=config.session_timeout_ms,
            max_poll_interval_ms=config.max_poll_interval_ms,
            max_partition_fetch_bytes=config.max_partition_fetch_bytes,
            heartbeat_interval_ms=max(100, config.session_timeout_ms // 4),
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=config.bootstrap,
            client_id=f"{config.client_id}-{config.name}",
            transactional_id=config.transactional_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            # one batch per partition per transaction: aiokafka queues a second batch for a partition
            # only after the first was sent, which costs a round trip inside the transaction
            max_batch_size=PRODUCER_MAX_BATCH_BYTES,
            # the broker answers CONCURRENT_TRANSACTIONS while the previous commit's markers are written;
            # aiokafka's default 100 ms backoff then dominates each transaction (Java uses 20 ms, KAFKA-5477)
            retry_backoff_ms=PRODUCER_RETRY_BACKOFF_MS,
            transaction_timeout_ms=config.transaction_timeout_ms,
        )
        self._sender = BatchSender(self._producer)
        self._generation_slot = fence_offsets_by_generation(self._producer)
        self._inflight: asyncio.Task[None] | None = None
        self._inflight_starts: dict[TopicPartition, int] = {}

    async def run(self, stop: asyncio.Event) -> None:
        await self._producer.start()
        try:
            await self._consumer.start()
            read_stable_offsets(self._consumer)
            self._consumer.subscribe(list(self.config.topics), listener=_Rebalance(self))
            try:
                while not stop.is_set():
                    await self._step()
                await self.settle()
            finally:
                await self._consumer.stop()
                await self.handler.on_revoked(set())
        finally:
            await self._producer.stop()

    async def settle(self) -> bool:
        """Wait for the transaction in flight; ``False`` if the group fenced it (other failures raise).

        A fenced batch was aborted: its partitions are sought back to where it started, so it is re-read
        if they are still ours (and by their new owner, from the same committed offset, if not).
        """
        task, self._inflight = self._inflight, None
        if task is None:
            return True
        try:
            await task
        except GroupFenced as fenced:
            self.fenced += 1
            log.warning("%s: transaction aborted, %s; its batch will be re-read", self.config.name, fenced)
            self._seek_back(self._inflight_starts)
            rejoin_after(self._consumer, fenced)
            return False
        return True

    async def wait_until_stable(self, partitions: set[TopicPartition]) -> None:
        """Wait until no open transaction holds offsets for ``partitions`` (a previous owner's last one).

        Handlers restore state from changelogs on assignment; reading them before the previous owner's
        last transaction settled would miss what it wrote while its offsets land after the restore.
        """
        if partitions:
            await self._consumer._coordinator.fetch_committed_offsets(partitions)

    def _seek_back(
        self, starts: dict[TopicPartition, int], keep: frozenset[TopicPartition] = frozenset()
    ) -> None:
        assigned = self._consumer.assignment()
        for tp, offset in starts.items():
            if tp in assigned and tp not in keep:
                self._consumer.seek(tp, offset)

    async def _step(self) -> None:
        """Fetch and process the next batch while the previous batch's transaction commits.

        Processing overlaps the previous commit's round trips; the new transaction only begins once
        the previous one committed, so transactions stay strictly one after another.
        """
        generation = self.generation
        batch = await self._consumer.getmany(
            timeout_ms=self.config.fetch_timeout_ms, max_records=self.config.max_records
        )
        async with self.lock:
            membership = Membership.of(self._consumer)
            if generation != self.generation or membership is None:
                self._rewind(batch)
                return
            housekeeping = self.handler.maintain()
            if not batch and not housekeeping:
                return
            outcome = await self.handler.handle(batch) if batch else Outcome()
            offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
            offsets.update(outcome.stop_at)
            for tp, offset in outcome.stop_at.items():
                self._consumer.seek(tp, offset)
            for tp, when in outcome.resume_at.items():
                self._pause(tp, when)
            starts = {tp: records[0].offset for tp, records in batch.items() if records}
            failed = self._inflight_starts
            if not await self.settle():
                self._seek_back(starts, keep=frozenset(failed))  # the earlier start of a partition wins
                self.handler.on_aborted()
                return
            outputs = housekeeping + outcome.records
            self._inflight_starts = starts
            self._inflight = asyncio.create_task(
                self._commit(outputs, offsets, membership), name=f"{self.config.name}-commit"
            )
            self.batches += 1
            self.records += sum(len(records) for records in batch.values())

    async def _commit(
        self, outputs: list[Out], offsets: dict[TopicPartition, int], membership: Membership
    ) -> None:
        producer = self._producer
        await producer.begin_transaction()
        try:
            pending = await self._sender.send(outputs)
            if offsets:
                self._generation_slot.current = membership
                await producer.send_offsets_to_transaction(offsets, self.config.group_id)
            await producer.commit_transaction()
            self.committed += 1
        except BaseException:
            self.handler.on_aborted()
            if producer._txn_manager is not None and producer._txn_manager.is_in_transaction():
                await asyncio.shield(producer.abort_transaction())
            raise
        self.handler.on_committed(last_offsets(pending))

    def _rewind(self, batch: Batch) -> None:
        """Give back a batch fetched while the assignment changed, unprocessed.

        Its first offset equals the committed offset (every processed batch commits before the next
        fetch), so seeking there re-reads it whether it came from the old assignment or the new one.
        """
        assigned = self._consumer.assignment()
        for tp, records in batch.items():
            if records and tp in assigned:
                self._consumer.seek(tp, records[0].offset)
        log.debug("%s gave back a batch fetched during a rebalance", self.config.name)

    def _pause(self, tp: TopicPartition, when: float) -> None:
        consumer, generation = self._consumer, self.generation
        consumer.pause(tp)

        def resume() -> None:
            if generation == self.generation and tp in consumer.assignment():
                consumer.resume(tp)

        asyncio.get_running_loop().call_at(when, resume)
