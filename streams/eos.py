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
restarted in the same slot fences its dead predecessor and aborts its open transaction at once. Without
KIP-447 (aiokafka sends no group generation with the offsets) a *live* zombie that lost its partitions
could still commit; a killed process cannot, which is what the chaos tests exercise.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from streams.batching import BatchSender, last_offsets
from streams.eos_types import Batch, Handler, Out, Outcome

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
        self._inflight: asyncio.Task[None] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        await self._producer.start()
        try:
            await self._consumer.start()
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

    async def settle(self) -> None:
        """Wait until the transaction in flight committed (raises if it failed)."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

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
            if generation != self.generation:
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
            await self.settle()
            outputs = housekeeping + outcome.records
            self._inflight = asyncio.create_task(
                self._commit(outputs, offsets), name=f"{self.config.name}-commit"
            )
            self.batches += 1
            self.records += sum(len(records) for records in batch.values())

    async def _commit(self, outputs: list[Out], offsets: dict[TopicPartition, int]) -> None:
        producer = self._producer
        await producer.begin_transaction()
        try:
            pending = await self._sender.send(outputs)
            if offsets:
                await producer.send_offsets_to_transaction(offsets, self.config.group_id)
            await producer.commit_transaction()
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
