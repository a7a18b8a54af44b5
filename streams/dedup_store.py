"""The dedup table: one RocksDB (rocksdict) per inbound partition, backed by a compacted changelog.

Layout of one partition's database (raw bytes mode)::

    b"k" + key                       -> b"{first_seen_ms}:{inbound_offset}[:{origins, JSON}]"
    b"t" + first_seen_ms(8 bytes BE) + key -> b""      time index, so expiry reads only what expired
    b"m:changelog"                   -> last changelog offset known to be applied here

Writes reach RocksDB before the transaction that carries their changelog record commits. After a crash
the database may hold keys whose outputs were aborted; because each entry remembers the inbound offset
that created it, re-reading that same offset is recognised as the first sighting again, not a duplicate.
On assignment the database catches up from the changelog (read_committed) starting after its checkpoint,
so a partition that moved to another worker and back sees everything committed meanwhile.

The table's key is a record's *dedup identity* (:func:`dedup_identity`): its record key
``provider:event_id``, or for a provider whose event id its signature does not cover (GitHub, Shopify)
a digest of the provider and the signed body, so a captured body re-posted under a fresh id is still
caught. A digest entry lists its *origins*: record key, event type and inbound offset of each event
that carried the body. A later record with an origin's key is the provider's resend (a duplicate);
one with another key is a replay of the body (``body``), or with ``body_and_type`` a replay only when
an origin had its event type too, else a new event (one body under two Shopify topics) that is added
as an origin. Entries without origins, every entry written before they existed among them, decode as
before, so an old changelog restores unchanged (an older worker cannot read the new entries back).
Each identity is deduplicated on the inbound partition Kafka's default partitioner maps it to
(:func:`services.kafka.partitioner.default_partition`), whichever partition the producer's partitioner
picked (streams/dedup.py forwards the others there).

Memory: every partition's database of one worker shares one :class:`StoreMemory` budget, memtables
charged to the same block cache, so the table grows on disk, not in RSS (RocksDB's defaults give each
database 64 MB memtables, which a 10-minute soak filled at a steady rate without ever flushing), and the
handler flushes memtables every expiry interval besides. Bloom filters keep the common case, a key
never seen, off the disk.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pydantic_core
from aiokafka import AIOKafkaConsumer, TopicPartition
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch, WriteBufferManager

from services.config import DedupMode

_CHECKPOINT = b"m:changelog"
DEFAULT_MEMORY_BYTES = 64 << 20
_TS = struct.Struct(">Q")


def _field(value: bytes) -> bytes:
    return b"%d:" % len(value) + value


def dedup_identity(mode: DedupMode, key: bytes, provider: str, body: bytes) -> bytes:
    """The dedup table's key for one envelope (``key`` is its record key, ``provider:event_id``).

    ``event_id``: the key itself. ``body`` and ``body_and_type``: a digest of the provider and the raw
    body, for providers whose signature covers the body only (the two differ in how an entry's origins
    are judged, not in the key, so switching between them keeps the window). Digests start with ``#``,
    which no provider name does: they never equal a record key.
    """
    if mode == "event_id":
        return key
    digest = hashlib.sha256(b"%d:" % len(provider) + provider.encode())
    digest.update(body)
    return b"#body:%s:%s" % (provider.encode(), digest.hexdigest()[:32].encode())


@dataclass(frozen=True, slots=True)
class Origin:
    """One event that carried a digest identity's body."""

    key: bytes
    event_type: str
    offset: int


@dataclass(frozen=True, slots=True)
class Entry:
    first_seen_ms: int
    offset: int
    origins: tuple[Origin, ...] = ()
    """For a digest identity, every event that carried the body within the window; else empty."""

    def encode(self) -> bytes:
        head = b"%d:%d" % (self.first_seen_ms, self.offset)
        if not self.origins:
            return head
        listed = [[o.key.decode(), o.event_type, o.offset] for o in self.origins]
        return head + b":" + pydantic_core.to_json(listed)

    @classmethod
    def decode(cls, raw: bytes) -> Entry:
        ts, offset, *listed = raw.split(b":", 2)
        origins = (
            tuple(Origin(k.encode(), t, o) for k, t, o in pydantic_core.from_json(listed[0]))
            if listed
            else ()
        )
        return cls(int(ts), int(offset), origins)


Verdict = Literal["new", "duplicate", "replayed_body"]


@dataclass(frozen=True, slots=True)
class Sighting:
    """What the table made of one record; ``encoded`` (staged) goes on the changelog when ``new``."""

    verdict: Verdict
    entry: Entry | None = None
    encoded: bytes = b""


class StoreMemory:
    """One memory budget for many partition databases: a block cache that also carries the memtables."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.cache = Cache(budget_bytes)  # must outlive every database using it: held here
        self.write_buffers = WriteBufferManager.new_write_buffer_manager_with_cache(
            budget_bytes // 2, False, self.cache
        )

    def options(self) -> Options:
        options = Options(raw_mode=True)
        options.set_write_buffer_manager(self.write_buffers)
        options.set_write_buffer_size(max(1 << 20, min(8 << 20, self.budget_bytes // 16)))
        table = BlockBasedOptions()
        table.set_block_cache(self.cache)
        table.set_bloom_filter(10, False)
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        options.set_block_based_table_factory(table)
        return options

    def usage(self) -> int:
        """Bytes held in the shared cache now (memtables included)."""
        return int(self.cache.get_usage())


class PartitionStore:
    """Dedup state of one inbound partition."""

    def __init__(self, path: Path, memory: StoreMemory | None = None) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        memory = memory or StoreMemory(DEFAULT_MEMORY_BYTES)
        options = memory.options()
        # Named for the default column family too: reopening an existing database, rocksdict otherwise
        # takes the column family's options from the OPTIONS file on disk, which cannot hold the shared
        # block cache, so each reopened partition got a private 8 MB cache outside the budget.
        self._db = Rdict(str(path), options=options, column_families={"default": options})
        self._batch = WriteBatch(raw_mode=True)
        self._staged: dict[bytes, bytes] = {}

    def memtable_bytes(self) -> int:
        """Memory held by this database's memtables (what grows with keys written and not flushed)."""
        return int(self._db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0)

    def flush_memtables(self) -> None:
        """Start writing the memtables to disk (RocksDB's background threads do it; returns at once).

        RocksDB flushes a memtable when it is full; at a steady few hundred webhooks a second a partition
        took a quarter of an hour to fill one, and RSS grew all that time. Flushed on a timer, what the
        table holds in memory tracks the recent rate, not the time since the last flush.
        """
        self._db.flush(wait=False)

    def close(self) -> None:
        self.flush()
        self._db.close()

    @property
    def checkpoint(self) -> int | None:
        raw = self._db.get(_CHECKPOINT)
        return None if raw is None else int(raw)

    def set_checkpoint(self, offset: int) -> None:
        current = self.checkpoint
        if current is None or offset > current:
            self._db.put(_CHECKPOINT, b"%d" % offset)

    def get(self, key: bytes) -> Entry | None:
        raw = self._staged.get(key) if self._staged else None
        raw = raw or self._db.get(b"k" + key)
        return None if raw is None else Entry.decode(raw)

    def first_sighting(self, key: bytes, timestamp_ms: int, offset: int, window_ms: int) -> Entry | None:
        """The entry to record if this is the first sighting within the window, else ``None``."""
        return self.sight(key, timestamp_ms, offset, window_ms).entry

    def sight(
        self,
        key: bytes,
        timestamp_ms: int,
        offset: int,
        window_ms: int,
        origin: Origin | None = None,
        by_type: bool = False,
    ) -> Sighting:
        """Judge one record by the entry of ``key``; a first sighting's entry is staged.

        ``origin`` is given for a digest identity (module doc); ``by_type``: another event type under
        the same body is a new event. :meth:`flush` writes every staged entry in one RocksDB write batch.
        """
        entry = self.get(key)
        if entry is not None and timestamp_ms - entry.first_seen_ms >= window_ms:
            entry = None  # expired, not yet swept
        if entry is None:
            return self._stage(key, Entry(timestamp_ms, offset, () if origin is None else (origin,)))
        if entry.offset == offset or any(seen.offset == offset for seen in entry.origins):
            return self._stage(key, entry)  # the record that created it, re-read after an abort
        if origin is None or any(seen.key == origin.key for seen in entry.origins):
            return Sighting("duplicate")
        if not by_type or any(seen.event_type == origin.event_type for seen in entry.origins):
            return Sighting("replayed_body")
        return self._stage(key, Entry(entry.first_seen_ms, entry.offset, (*entry.origins, origin)))

    def _stage(self, key: bytes, entry: Entry) -> Sighting:
        encoded = entry.encode()
        self._staged[key] = encoded
        self._batch.put(b"k" + key, encoded)
        self._batch.put(b"t" + _TS.pack(entry.first_seen_ms) + key, b"")
        return Sighting("new", entry, encoded)

    def flush(self) -> None:
        if self._staged:
            self._db.write(self._batch)
            self._batch = WriteBatch(raw_mode=True)
            self._staged = {}

    def apply(self, key: bytes, value: bytes | None) -> None:
        """Put or (``None``) delete one key from the changelog, keeping the time index in step."""
        batch = WriteBatch(raw_mode=True)
        if value is None:
            batch.delete(b"k" + key)
        else:
            batch.put(b"k" + key, value)
            batch.put(b"t" + _TS.pack(Entry.decode(value).first_seen_ms) + key, b"")
        self._db.write(batch)

    def _keys(self, prefix: bytes) -> Iterator[bytes]:
        """Keys starting with ``prefix``, in order (raw mode: always bytes; rocksdict's hints say more)."""
        for key in self._db.keys(from_key=prefix):
            assert isinstance(key, bytes)
            if not key.startswith(prefix):
                return
            yield key

    def expire(self, cutoff_ms: int, limit: int) -> list[bytes]:
        """Delete up to ``limit`` keys first seen before ``cutoff_ms``; return them for tombstoning."""
        expired: list[bytes] = []
        batch = WriteBatch(raw_mode=True)
        stale_index = 0
        for index_key in self._keys(b"t"):
            if len(expired) >= limit:
                break
            ts = _TS.unpack_from(index_key, 1)[0]
            if ts >= cutoff_ms:
                break
            key = index_key[1 + _TS.size :]
            batch.delete(index_key)
            entry = self.get(key)
            if entry is not None and entry.first_seen_ms == ts:
                batch.delete(b"k" + key)
                expired.append(key)
            else:
                stale_index += 1  # a newer sighting or a restored delete superseded this index entry
        if expired or stale_index:
            self._db.write(batch)
        return expired

    def count(self) -> int:
        return sum(1 for _ in self._keys(b"k"))

    async def restore(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
        """Apply the changelog partition ``tp`` after the checkpoint up to its stable end; return records."""
        consumer.assign([tp])
        checkpoint = self.checkpoint
        if checkpoint is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, checkpoint + 1)
        end = (await consumer.end_offsets([tp]))[tp]
        applied = 0
        while await consumer.position(tp) < end:
            batches = await consumer.getmany(tp, timeout_ms=500, max_records=5000)
            for record in batches.get(tp, []):
                if record.key is not None:
                    self.apply(record.key, record.value)
                    applied += 1
                self.set_checkpoint(record.offset)
        return applied


def wipe(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
