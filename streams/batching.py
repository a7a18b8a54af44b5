"""Producing a transaction's outputs as whole record batches, not one ``send`` per record.

``AIOKafkaProducer.send`` costs tens of microseconds a record in Python (a future, a metadata check and
a pure-Python murmur2 for the partition); the profile of the pipeline showed it as the largest cost.
``create_batch`` / ``send_batch`` (aiokafka's batch API, transactional batches included) append into a
C record builder instead. A record that follows its source partition skips the hash: when the target
topic has as many partitions as the source, the source partition *is* the key's default partition
(:func:`services.kafka.partitioner.default_partition`), because every Breakwater topic is keyed the
same way from the edge onwards.

aiokafka checks ``max_request_size`` only in ``send``, not here: a record builder always takes its first
record whatever ``max_batch_size`` says, so one large record becomes a batch of its own and only the
broker's ``max.message.bytes`` refuses it. That is why outputs over :data:`streams.poison.OUTPUT_MAX_BYTES`
are replaced before they are sent (:class:`Refusals`), and why the loop awaits every batch's result
before it commits.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any  # aiokafka's BatchBuilder has no type hints

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka import errors as Errors
from aiokafka.structs import RecordMetadata

from services.kafka.partitioner import default_partition
from streams.eos_types import Origin, Out
from streams.poison import OUTPUT_MAX_BYTES, bounded, output_bytes, reason_of

RECORD_ERRORS = (
    Errors.MessageSizeTooLargeError,
    Errors.RecordListTooLargeError,
    Errors.UnsupportedForMessageFormatError,
)
"""What the broker answers about a record batch itself: the same records get the same answer again.

Not InvalidTimestampError: timestamps are the producer's clock, so it means clock skew, and replacing
every record after three refusals would lose their bodies. Not CorruptRecordException: aiokafka retries
it, so a transactional producer never fails a future with it."""
REFUSALS_BEFORE_REPLACING = 3
"""Times the broker may refuse one output, sent alone, before it is replaced by its bounded record."""


@dataclass(slots=True)
class _Pending:
    tp: TopicPartition
    count: int
    future: asyncio.Future[RecordMetadata]
    outs: list[Out]


class Refusals:
    """What the broker refused, by input record: suspects are sent alone, repeat offenders replaced.

    A refused batch aborts its transaction and is re-read. The broker refuses a whole record batch, so
    at first every output in it is only a suspect and is sent in a batch of its own on the next attempt;
    an output refused alone ``limit`` times (the same record, the same answer: a topic created with a
    smaller ``max.message.bytes``, a record the broker will never take) is replaced by its bounded
    record, so the loop goes on instead of aborting for ever. Without a quarantine topic nothing is
    replaced: the loop keeps retrying and says so.
    """

    def __init__(self, quarantine_topic: str | None, limit: int = REFUSALS_BEFORE_REPLACING) -> None:
        self.quarantine_topic = quarantine_topic
        self.limit = limit
        self.strikes: dict[Origin, dict[str, tuple[int, str]]] = {}
        """Refusals by input record, then by the output's topic: one refused output (a ready record)
        must not replace the record's other outputs (its changelog entry, its other destinations)."""
        self.replaced = 0

    def __bool__(self) -> bool:
        return bool(self.strikes)

    def refused(self, item: _Pending, exc: BaseException) -> None:
        """Count a refusal of ``item``'s outputs, if the error is about the records themselves.

        Other failures (a fenced producer, a missing ACL) are not the record's fault: the batch is
        re-read, but nothing is replaced because of them.
        """
        if not isinstance(exc, RECORD_ERRORS):
            return
        for out in item.outs:
            if out.origin is None:
                continue
            by_topic = self.strikes.setdefault(out.origin, {})
            count, _ = by_topic.get(out.topic, (0, ""))
            # a batch of many proves nothing about each one: it makes them suspects (count 0)
            by_topic[out.topic] = (count + 1 if len(item.outs) == 1 else count, reason_of(exc))

    def prepare(self, out: Out) -> tuple[Out, bool]:
        """``out`` or its bounded replacement, and whether it must travel in a batch of its own."""
        if self.quarantine_topic is None:
            return out, True
        if output_bytes(out) > OUTPUT_MAX_BYTES:
            self.replaced += 1
            detail = f"{output_bytes(out)} bytes for {out.topic}: over the record limit {OUTPUT_MAX_BYTES}"
            return bounded(out, self.quarantine_topic, detail), False
        by_topic = self.strikes.get(out.origin, {}) if out.origin else {}
        count, reason = by_topic.get(out.topic, (0, ""))
        if count >= self.limit:
            self.replaced += 1
            return bounded(
                out, self.quarantine_topic, f"refused {count} times for {out.topic}: {reason}"
            ), False
        return out, True

    def forget(self, origins: set[Origin]) -> None:
        """The records committed: what was remembered about them is settled."""
        for origin in origins & self.strikes.keys():
            del self.strikes[origin]


class BatchSender:
    """Partitions and batches outputs for one producer; partition counts are cached per topic."""

    def __init__(self, producer: AIOKafkaProducer, refusals: Refusals | None = None) -> None:
        self._producer = producer
        self._counts: dict[str, int] = {}
        self.refusals = refusals or Refusals(None)

    def forget_partition_counts(self) -> None:
        """Called on rebalance: topics may have grown."""
        self._counts.clear()

    async def _learn(self, outputs: list[Out]) -> None:
        """Fetch partition counts of topics not seen yet (one metadata wait per new topic)."""
        topics = {out.topic for out in outputs} | {out.follow.topic for out in outputs if out.follow}
        for topic in topics - self._counts.keys():
            self._counts[topic] = len(await self._producer.partitions_for(topic))

    def partition(self, out: Out) -> int:
        if out.partition is not None:
            return int(out.partition)
        count = self._counts[out.topic]
        if out.follow is not None and self._counts[out.follow.topic] == count:
            return int(out.follow.partition)
        if out.key is None:
            return random.randrange(count)
        return default_partition(out.key, count)

    async def send(self, outputs: list[Out]) -> list[_Pending]:
        """Queue every output in the open transaction; await each ``_Pending.future`` before commit."""
        refusals = self.refusals
        alone: set[int] = set()  # ids of outputs sent in a batch of their own
        prepared = []
        strikes, limit = refusals.strikes, OUTPUT_MAX_BYTES
        for out in outputs:
            if (strikes and out.origin in strikes) or len(out.value or b"") + len(out.key or b"") > limit:
                out, single = refusals.prepare(out)
                if single:
                    alone.add(id(out))
            prepared.append(out)
        outputs = prepared
        await self._learn(outputs)
        producer = self._producer
        partition = self.partition
        open_batches: dict[tuple[str, int], tuple[Any, list[Out]]] = {}
        pending: list[_Pending] = []
        for out in outputs:
            if alone and id(out) in alone:
                builder = producer.create_batch()
                builder.append(timestamp=None, key=out.key, value=out.value, headers=list(out.headers))
                pending.append(await self._submit(builder, (out.topic, partition(out)), [out]))
                continue
            where = (out.topic, partition(out))
            builder, outs = open_batches.get(where) or (producer.create_batch(), [])
            if (
                builder.append(timestamp=None, key=out.key, value=out.value, headers=list(out.headers))
                is None
            ):
                pending.append(await self._submit(builder, where, outs))
                builder, outs = producer.create_batch(), []
                builder.append(timestamp=None, key=out.key, value=out.value, headers=list(out.headers))
            outs.append(out)
            open_batches[where] = (builder, outs)
        for where, (builder, outs) in open_batches.items():
            pending.append(await self._submit(builder, where, outs))
        return pending

    async def _submit(self, builder: Any, where: tuple[str, int], outs: list[Out]) -> _Pending:
        topic, partition = where
        future = await self._producer.send_batch(builder, topic, partition=partition)
        return _Pending(TopicPartition(topic, partition), len(outs), future, outs)


def last_offsets(pending: list[_Pending]) -> dict[TopicPartition, int]:
    """Offset of the last record written to each partition (after the transaction committed)."""
    last: dict[TopicPartition, int] = {}
    for item in pending:
        end = item.future.result().offset + item.count - 1
        last[item.tp] = max(end, last.get(item.tp, -1))
    return last
