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
:mod:`services.kafka.group_fencing` commits the offsets with the generation the batch was fetched under and
reads committed offsets only once stable (KIP-447, which aiokafka lacks). A fenced transaction is
aborted and its batch, and the one processed behind it, are re-read; the worker carries on.

Every output is confirmed before the commit: aiokafka fails a refused batch's future but commits the
transaction anyway, so the loop awaits each batch's result and aborts if one failed (the batch is
re-read; :class:`streams.batching.Refusals` makes sure a record the broker will never take is
replaced by a bounded record instead of aborting for ever). A transaction that fails for another
Kafka reason (the broker gone) is aborted the same way and retried with backoff, on a new producer
(same transactional id: it fences the old one and starts from clean sequence numbers).

A partition is processed only once its handler opened it: a restore that fails inside the rebalance
listener (aiokafka would log and swallow the error) leaves the partitions paused, and the loop retries
the restore with backoff until it succeeds or the partitions go elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced

from schemas.limits import RECORD_MAX_BYTES
from services.errors import BreakwaterError
from services.kafka import clients
from services.kafka.clients import KafkaTarget
from services.kafka.group_fencing import (
    GroupFenced,
    Membership,
    fence_offsets_by_generation,
    read_stable_offsets,
    rejoin_after,
)
from services.kafka.internals import group_coordinator, in_transaction, wait_for_committed_offsets
from streams.batching import BatchSender, Refusals, _Pending, last_offsets
from streams.eos_types import Batch, Handler, Out, Outcome

__all__ = ["Batch", "Handler", "LoopConfig", "Out", "Outcome", "TransactionalLoop"]

log = logging.getLogger(__name__)
PRODUCER_RETRY_BACKOFF_MS = 10
PRODUCER_MAX_BATCH_BYTES = 1_000_000  # below the broker's default message.max.bytes (1 MiB)
RETRY_BACKOFF_SECONDS = (0.2, 10.0)
"""First and longest wait before retrying a failed transaction or restore (doubling in between)."""
WAITING_FOR_ASSIGNMENT = "waiting for its first assignment"


class OutputsRefused(BreakwaterError):
    """The broker refused some outputs of a transaction; it was aborted and its batch will be re-read."""

    def __init__(self, failures: list[tuple[_Pending, BaseException]]) -> None:
        first = failures[0][1]
        super().__init__(f"{len(failures)} record batch(es) refused, first: {type(first).__name__}: {first}")
        self.failures = failures


class Backoff:
    """Doubling waits between attempts, reset by a success."""

    def __init__(
        self, first: float = RETRY_BACKOFF_SECONDS[0], longest: float = RETRY_BACKOFF_SECONDS[1]
    ) -> None:
        self.first, self.longest = first, longest
        self.failures = 0
        self.until = 0.0

    def failed(self) -> float:
        wait = min(self.longest, self.first * 2.0**self.failures)
        self.failures += 1
        self.until = time.monotonic() + wait
        return wait

    def succeeded(self) -> None:
        self.failures, self.until = 0, 0.0

    @property
    def due(self) -> bool:
        return time.monotonic() >= self.until


@dataclass(frozen=True)
class LoopConfig:
    name: str
    bootstrap: KafkaTarget
    """The cluster: ``settings.kafka``, or a bootstrap list (tests)."""
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
    quarantine_topic: str | None = None
    """Where outputs that can never be stored go as bounded records (none: retried for ever)."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka's listener is untyped
    def __init__(self, loop: TransactionalLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._loop.lock:  # the batch in flight commits first
            await self._loop.settle()
            self._loop.generation += 1
            self._loop.unopened -= set(revoked)
            await self._loop.handler.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        async with self._loop.lock:
            self._loop.generation += 1
            self._loop._batch_sender.forget_partition_counts()
            await self._loop.open_partitions(set(assigned))


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
        self.refused = 0
        self.failed = 0
        """Transactions aborted because the broker refused outputs, or for another Kafka failure."""
        self.restore_failures = 0
        """Attempts to open (restore) assigned partitions that failed; each is retried with backoff."""
        self.unopened: set[TopicPartition] = set()
        """Assigned partitions whose handler could not open them yet (paused until it does)."""
        self.kafka_error: str | None = None
        """The last Kafka failure, until a transaction or restore succeeds again."""
        self._restore_backoff = Backoff()
        self._commit_backoff = Backoff()
        self._producer_broken = False
        self._consumer = clients.consumer(
            config.bootstrap,
            client_id=f"{config.client_id}-{config.name}",
            group_id=config.group_id,
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
        self._refusals = Refusals(config.quarantine_topic)
        self._producer = self._new_producer()
        self._batch_sender = BatchSender(self._producer, self._refusals)
        self._generation_slot = fence_offsets_by_generation(self._producer)
        self._inflight: asyncio.Task[None] | None = None
        self._inflight_starts: dict[TopicPartition, int] = {}

    def _new_producer(self) -> AIOKafkaProducer:
        config = self.config
        return clients.producer(
            config.bootstrap,
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
            # aiokafka checks this only in send(), not for send_batch (streams.batching): set for clarity
            max_request_size=RECORD_MAX_BYTES,
        )

    async def _renew_producer(self) -> None:
        """Replace the producer after a failed transaction: same transactional id, clean state.

        A refused batch leaves aiokafka's sequence numbers ahead of what the broker stored; a new
        producer (InitProducerId) fences the old one, aborts whatever it left open and starts over.
        """
        old = self._producer
        try:
            await asyncio.wait_for(old.stop(), 10)
        except Exception as exc:  # it is being replaced: its state does not matter any more
            log.debug("%s: stopping the failed producer: %r", self.config.name, exc)
        producer = self._new_producer()
        try:
            await producer.start()
        except BaseException:  # Kafka still away: close what start() opened, try again later
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 10)
            raise
        self._producer = producer
        self._batch_sender = BatchSender(producer, self._refusals)
        self._generation_slot = fence_offsets_by_generation(producer)

    def ready(self) -> tuple[bool, str]:
        """Whether this loop is working, and if not, why (for ``/readyz``)."""
        coordinator = group_coordinator(self._consumer)
        if self.generation == 0:
            return False, WAITING_FOR_ASSIGNMENT
        if coordinator is None or coordinator.coordinator_id is None:
            return False, "no group coordinator: Kafka unreachable"
        if self.unopened:
            return False, f"{len(self.unopened)} partition(s) not restored"
        if self.kafka_error is not None:
            return False, self.kafka_error
        return True, "ok"

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
        """Wait for the transaction in flight; ``False`` if it was aborted (fenced, refused, Kafka failed).

        An aborted batch's partitions are sought back to where it started, so it is re-read if they
        are still ours (and by their new owner, from the same committed offset, if not). Only a
        producer fenced by its own transactional id (another process in this worker slot) raises.
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
        except ProducerFenced:
            raise  # another worker took this slot's transactional id: this one must stop
        except (OutputsRefused, KafkaError) as exc:
            await self._after_failed(exc)
            return False
        self.kafka_error = None
        self._commit_backoff.succeeded()
        return True

    async def _after_failed(self, exc: BaseException) -> None:
        """A transaction was aborted: remember what was refused, re-read its batch, back off, renew."""
        if isinstance(exc, OutputsRefused):
            self.refused += 1
            for item, error in exc.failures:
                self._refusals.refused(item, error)
        else:
            self.failed += 1
        self.kafka_error = f"transaction failed: {type(exc).__name__}: {exc}"
        wait = self._commit_backoff.failed()
        log.warning(
            "%s: transaction aborted (%s: %s); its batch will be re-read in %.1fs",
            self.config.name,
            type(exc).__name__,
            exc,
            wait,
        )
        self._seek_back(self._inflight_starts)
        try:
            await self._renew_producer()
        except KafkaError as renew:  # Kafka is away: the next attempt renews again
            log.warning("%s: cannot start a new producer yet: %s", self.config.name, renew)
            self._producer_broken = True
        else:  # the transaction coordinator answered: Kafka is there, the batch is re-read now
            self.kafka_error = None

    async def open_partitions(self, partitions: set[TopicPartition]) -> None:
        """Let the handler open (restore) ``partitions``; on failure pause them and retry later.

        Called with the lock held, from the rebalance listener and from :meth:`_step`. Never raises a
        Kafka or restore failure (any ``Exception``: rocksdict raises bare ones for a held lock or a
        corrupt OPTIONS file): aiokafka would swallow it and fetch from partitions never opened.
        """
        partitions &= self._consumer.assignment()
        if not partitions:
            self.unopened.clear()
            return
        try:
            await self.wait_until_stable(partitions)
            await self.handler.on_assigned(partitions)
        except Exception as exc:  # Kafka away, or RocksDB refusing to open (rocksdict raises bare Exception)
            self.restore_failures += 1
            self.unopened = set(partitions)
            self._consumer.pause(*partitions)
            wait = self._restore_backoff.failed()
            self.kafka_error = f"opening partitions failed: {type(exc).__name__}: {exc}"
            log.warning(
                "%s: opening partition(s) %s failed (%s: %s); retrying in %.1fs",
                self.config.name,
                ", ".join(f"{tp.topic}-{tp.partition}" for tp in sorted(partitions)),
                type(exc).__name__,
                exc,
                wait,
            )
            return
        if self.unopened:
            self._consumer.resume(*self.unopened & partitions)
            log.info("%s: %d partition(s) opened after a failure", self.config.name, len(self.unopened))
        self.unopened.clear()
        self._restore_backoff.succeeded()
        self.kafka_error = None

    async def wait_until_stable(self, partitions: set[TopicPartition]) -> None:
        """Wait until no open transaction holds offsets for ``partitions`` (a previous owner's last one).

        Handlers restore state from changelogs on assignment; reading them before the previous owner's
        last transaction settled would miss what it wrote while its offsets land after the restore.
        """
        if partitions:
            await wait_for_committed_offsets(self._consumer, partitions)

    async def _wait_for_kafka(self) -> None:
        """Between failed transactions: wait out the backoff, then get a working producer."""
        await asyncio.sleep(max(0.0, min(0.5, self._commit_backoff.until - time.monotonic())))
        if self._producer_broken and self._commit_backoff.due:
            async with self.lock:
                try:
                    await self._renew_producer()
                except KafkaError as exc:
                    self._commit_backoff.failed()
                    log.warning("%s: cannot start a new producer yet: %s", self.config.name, exc)
                    return
                self._producer_broken = False
                self.kafka_error = None

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
        if self.unopened and self._restore_backoff.due:
            async with self.lock:
                if self.unopened:
                    await self.open_partitions(set(self.unopened))
        if self._producer_broken or not self._commit_backoff.due:
            await self._wait_for_kafka()
            return
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
                if self._inflight is not None and self._inflight.done():
                    await self.settle()  # an aborted batch is re-read even when nothing new arrives
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
            pending = await self._batch_sender.send(outputs)
            if offsets:
                self._generation_slot.current = membership
                await producer.send_offsets_to_transaction(offsets, self.config.group_id)
            # aiokafka fails a refused batch's future but would still commit: confirm every one first
            results = await asyncio.gather(*(item.future for item in pending), return_exceptions=True)
            failures = [
                (item, result)
                for item, result in zip(pending, results, strict=True)
                if isinstance(result, BaseException)
            ]
            for _, error in failures:
                if isinstance(error, ProducerFenced):
                    # another process took this transactional id: renewing would fence it back, for ever
                    raise error
            if failures:
                raise OutputsRefused(failures)
            await producer.commit_transaction()
            self.committed += 1
        except BaseException:
            self.handler.on_aborted()
            if in_transaction(producer):
                await asyncio.shield(producer.abort_transaction())
            raise
        if self._refusals:
            self._refusals.forget({out.origin for item in pending for out in item.outs if out.origin})
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
            if generation == self.generation and tp in consumer.assignment() and tp not in self.unopened:
                consumer.resume(tp)

        asyncio.get_running_loop().call_at(when, resume)
