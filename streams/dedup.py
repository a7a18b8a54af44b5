"""The dedup stage: ``webhooks.inbound`` → ``webhooks.ready.{provider}``, quarantine or drop.

Every record is checked in this order, and the first failure decides (poison never raises):
signature (``bad_signature``), JSON (``undecodable``), envelope schema (``invalid_envelope``), record key
equals ``provider:event_id`` (``key_mismatch``), provider configured (``unknown_provider``), a forwarded
record on the partition that owns it (``misrouted``, below). A valid
envelope is new if its dedup identity was not seen within the window (by record timestamp) and goes on
unchanged; a duplicate is counted and dropped.

Dedup state is per inbound partition, so each identity is deduplicated on the one partition it maps to
(murmur2, the Java client's and the edge's partitioner). A record elsewhere (an upstream gateway's
librdkafka producer hashes keys with CRC32; a body-digest identity rarely hashes like its record key) is
forwarded there unchanged, with an explicit partition, in the batch's own transaction (``dedup.forwarded``)
and deduplicated by that partition's owner. A forwarded record that arrives on a partition that does not
own it (workers disagreeing on the partition count or a provider's ``dedup`` setting) is quarantined as
``misrouted`` rather than forwarded again. For a body-digest identity a copy under another event id
is a replay of a captured body (``dedup.replayed_body``), one under the same id a resend
(``dedup.duplicate``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Set
from pathlib import Path
from typing import NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from schemas.envelope import WebhookEnvelope
from schemas.headers import FORWARDED_FROM_HEADER, TRACEPARENT_HEADER
from schemas.signing import EnvelopeSignatureError, EnvelopeSigner
from schemas.topics import PipelineTopics
from services.config import DedupMode
from services.errors import BreakwaterError
from services.kafka import clients
from services.kafka.clients import KafkaTarget
from services.kafka.internals import cluster_metadata
from services.kafka.partitioner import default_partition
from streams.dedup_store import DEFAULT_MEMORY_BYTES, Origin, PartitionStore, StoreMemory, dedup_identity
from streams.eos_types import Batch, Out, Outcome, Record
from streams.metrics import Metrics
from streams.poison import is_infrastructure, origin_of, quarantine, reason_of

EXPIRY_BATCH = 10_000
UNOPENED_RETRY_SECONDS = 1.0
RESTORER_STOP_SECONDS = 10.0
log = logging.getLogger(__name__)


def _forwarded(record: Record) -> tuple[tuple[str, bytes], ...]:
    """Headers worth keeping after dedup: the trace context, not the edge signature (checked here)."""
    return tuple((name, value) for name, value in record.headers if name == TRACEPARENT_HEADER)


class Quarantined(BreakwaterError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Checked(NamedTuple):
    envelope: WebhookEnvelope
    identity: bytes
    owner: int
    """The inbound partition that deduplicates ``identity``."""


class DedupHandler:
    """Handler for :class:`streams.eos.TransactionalLoop` over the inbound topic."""

    def __init__(
        self,
        *,
        bootstrap: KafkaTarget,
        topics: PipelineTopics,
        signer: EnvelopeSigner,
        providers: Mapping[str, DedupMode] | Set[str],
        window_seconds: int,
        expiry_interval_seconds: float,
        state_dir: Path,
        metrics: Metrics,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        clock: Callable[[], float] = time.time,
        inbound_partitions: int | None = None,
    ) -> None:
        """``providers``: each configured provider's dedup mode (a bare set: ``event_id`` for all).

        ``inbound_partitions`` fixes the inbound partition count; by default it is read from the
        cluster on each assignment, with the restore (so a failure is retried like one).
        """
        self._bootstrap = bootstrap
        self._topics = topics
        self._signer = signer
        self._modes: Mapping[str, DedupMode] = (
            providers if isinstance(providers, Mapping) else dict.fromkeys(providers, "event_id")
        )
        self._fixed_partitions = inbound_partitions
        self._partitions = inbound_partitions or 0
        self._window_ms = window_seconds * 1000
        self._expiry_interval = expiry_interval_seconds
        self._state_dir = state_dir
        self._metrics = metrics
        self._clock = clock
        self._next_expiry = clock() + expiry_interval_seconds
        self.stores: dict[int, PartitionStore] = {}
        self.memory = StoreMemory(memory_bytes)

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        mine = sorted(tp.partition for tp in partitions if tp.topic == self._topics.inbound)
        if not mine:
            return
        restorer = clients.consumer(
            self._bootstrap, isolation_level="read_committed", enable_auto_commit=False
        )
        await restorer.start()
        try:
            if not self._fixed_partitions:  # here, not in handle: open_partitions retries a failure
                self._partitions = await self._inbound_partitions(restorer)
            for partition in mine:
                store = self.stores.get(partition) or self._open(partition)
                self.stores[partition] = store
                tp = TopicPartition(self._topics.dedup_changelog, partition)
                self._metrics["dedup.restored"] += await store.restore(restorer, tp)
        finally:
            # bounded: a restorer that never got an assignment can hang in stop() (aiokafka 0.14)
            await asyncio.wait_for(restorer.stop(), RESTORER_STOP_SECONDS)

    async def _inbound_partitions(self, consumer: AIOKafkaConsumer) -> int:
        """How many partitions the inbound topic has (dedup identities map onto them)."""
        cluster = await cluster_metadata(consumer)
        partitions = cluster.partitions_for_topic(self._topics.inbound)
        if not partitions:
            raise BreakwaterError(f"topic {self._topics.inbound} has no partitions in the cluster's metadata")
        return len(partitions)

    def _open(self, partition: int) -> PartitionStore:
        return PartitionStore(self._state_dir / f"dedup-{partition}", self.memory)

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        self._partitions = self._fixed_partitions or 0  # read again: the rebalance may be a new count
        gone = {tp.partition for tp in partitions} if partitions else set(self.stores)
        for partition in gone:
            store = self.stores.pop(partition, None)
            if store is not None:
                store.close()

    async def handle(self, batch: Batch) -> Outcome:
        """Outputs of a batch; a record whose handling raises is quarantined as ``unprocessable``.

        A partition whose store is not open (its restore failed) is given back unprocessed: the loop
        keeps such partitions paused until a restore succeeds, this is the last line of defence.
        """
        outcome = Outcome()
        for tp, records in batch.items():
            store = self.stores.get(tp.partition)
            if store is None or not self._partitions:
                log.warning("dedup state of %s is not restored; its records wait", tp)
                outcome.stop_at[tp] = records[0].offset
                outcome.resume_at[tp] = asyncio.get_running_loop().time() + UNOPENED_RETRY_SECONDS
                continue
            for record in records:
                try:
                    outs = self.one(store, record)
                except Exception as exc:
                    if is_infrastructure(exc):
                        raise
                    self._metrics["dedup.quarantined.unprocessable"] += 1
                    outs = [quarantine(self._topics.quarantine, record, "unprocessable", reason_of(exc))]
                origin = origin_of(record)
                for out in outs:
                    out.origin = origin
                outcome.records.extend(outs)
            store.flush()
        return outcome

    def one(self, store: PartitionStore, record: Record) -> list[Out]:
        """The outputs of one inbound record (none for a duplicate)."""
        source = TopicPartition(record.topic, record.partition)
        try:
            envelope, identity, owner = self._check(record)
        except Quarantined as bad:
            self._metrics[f"dedup.quarantined.{bad.reason}"] += 1
            return [self._quarantine(record, bad, source)]
        if owner != record.partition:
            self._metrics["dedup.forwarded"] += 1
            return [self._forward(record, owner)]
        key = record.key or b""
        mode = self._modes[envelope.provider]
        origin = None if mode == "event_id" else Origin(key, envelope.event_type, record.offset)
        sighting = store.sight(
            identity, record.timestamp, record.offset, self._window_ms, origin, mode == "body_and_type"
        )
        if sighting.entry is None:
            self._metrics[f"dedup.{sighting.verdict}"] += 1
            return []
        self._metrics["dedup.new"] += 1
        return [
            Out(self._topics.ready(envelope.provider), key, record.value, _forwarded(record), follow=source),
            Out(self._topics.dedup_changelog, identity, sighting.encoded, partition=record.partition),
        ]

    def _forward(self, record: Record, owner: int) -> Out:
        """The record as it came (key, value, headers), onto the inbound partition that owns it."""
        headers = (*record.headers, (FORWARDED_FROM_HEADER, b"%d" % record.partition))
        return Out(self._topics.inbound, record.key, record.value, headers, partition=owner)

    def _check(self, record: Record) -> Checked:
        value = record.value or b""
        try:
            self._signer.verify(value, record.headers)
        except EnvelopeSignatureError as exc:
            raise Quarantined("bad_signature", exc.reason) from exc
        try:
            envelope = WebhookEnvelope.model_validate_json(value)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            reason = "undecodable" if first["type"] == "json_invalid" else "invalid_envelope"
            raise Quarantined(reason, str(exc).splitlines()[0] + ": " + first["msg"]) from exc
        key = envelope.key.encode()
        if record.key != key:
            raise Quarantined("key_mismatch", f"record key {record.key!r} is not {envelope.key!r}")
        mode = self._modes.get(envelope.provider)
        if mode is None:
            raise Quarantined("unknown_provider", f"provider {envelope.provider!r} is not configured")
        identity = dedup_identity(mode, key, envelope.provider, envelope.body)
        owner = default_partition(identity, self._partitions)  # the partition the edge's producer picks
        if owner != record.partition and any(name == FORWARDED_FROM_HEADER for name, _ in record.headers):
            raise Quarantined(
                "misrouted",
                f"forwarded to partition {record.partition}, but partition {owner} of "
                f"{self._partitions} owns its dedup identity here: do the workers' settings differ?",
            )
        return Checked(envelope, identity, owner)

    def _quarantine(self, record: Record, bad: Quarantined, source: TopicPartition) -> Out:
        """Raw bytes and reason; headers decoded leniently (a null or non-UTF-8 value never raises)."""
        return quarantine(self._topics.quarantine, record, bad.reason, bad.detail)

    def maintain(self) -> list[Out]:
        """Every ``expiry_interval``: tombstones for keys first seen before the window, memtables flushed."""
        now = self._clock()
        if now < self._next_expiry:
            return []
        self._next_expiry = now + self._expiry_interval
        cutoff = int(now * 1000) - self._window_ms
        tombstones = []
        for partition, store in self.stores.items():
            for key in store.expire(cutoff, EXPIRY_BATCH):
                tombstones.append(Out(self._topics.dedup_changelog, key, None, partition=partition))
            store.flush_memtables()
        self._metrics["dedup.expired"] += len(tombstones)
        return tombstones

    def on_committed(self, last_offsets: dict[TopicPartition, int]) -> None:
        changelog = self._topics.dedup_changelog
        for tp, offset in last_offsets.items():
            if tp.topic == changelog and tp.partition in self.stores:
                self.stores[tp.partition].set_checkpoint(offset)

    def on_aborted(self) -> None:
        """Nothing to undo: entries remember their offset, so re-reading it counts as first (module doc)."""
