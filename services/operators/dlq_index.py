"""The DLQ index: every dead letter on ``webhooks.dlq`` joined with its mark from ``webhooks.dlq.state``.

Built on demand, in memory, for one command or one API request: both topics are read from the
beginning with ``read_committed`` up to their current ends, bounded by ``max_records`` per topic
(:mod:`services.operators.reader`). That is enough while dead letters number in the hundreds of
thousands and keeps operators off the workers' hot path; a persistent (RocksDB) index fed by a
consumer is the later step once the scan gets slow.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import ValidationError

from schemas.deadletter import DeadLetter
from schemas.topics import PipelineTopics
from services.errors import BreakwaterError
from services.kafka.clients import KafkaTarget
from services.operators.filters import DlqFilter
from services.operators.marks import DlqMark, decode_mark
from services.operators.reader import read_snapshot

__all__ = ["AmbiguousId", "DlqEntry", "DlqIndex", "EntryState", "RecordLike", "latest_marks", "load_index"]

log = logging.getLogger(__name__)
EntryState = Literal["dead", "replayed", "discarded"]


class RecordLike(Protocol):
    """What the index needs of a Kafka record (aiokafka's ``ConsumerRecord`` fits)."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class AmbiguousId(BreakwaterError, LookupError):
    """An id prefix names more than one dead letter."""


@dataclass(frozen=True)
class DlqEntry:
    """One dead letter where it sits on the topic, with its current mark (None: still dead)."""

    dead: DeadLetter
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    mark: DlqMark | None = None

    @property
    def id(self) -> str:
        return self.dead.id

    @property
    def mark_state(self) -> Literal["replayed", "discarded"] | None:
        return self.mark.state if self.mark else None

    @property
    def state(self) -> EntryState:
        return self.mark.state if self.mark else "dead"


def latest_marks(records: Iterable[RecordLike]) -> dict[str, DlqMark | None]:
    """The last mark per dead letter id, as compaction would keep it (a tombstone clears it)."""
    marks: dict[str, DlqMark | None] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        if record.key is not None:
            marks[record.key.decode("utf-8", "replace")] = decode_mark(record.value)
    return marks


@dataclass
class DlqIndex:
    entries: dict[str, DlqEntry] = field(default_factory=dict)
    unreadable: list[tuple[int, int]] = field(default_factory=list)
    """(partition, offset) of DLQ records that are not dead letters: shown, never fatal."""
    truncated: bool = False

    @classmethod
    def build(
        cls, dead_records: Iterable[RecordLike], mark_records: Iterable[RecordLike], truncated: bool = False
    ) -> DlqIndex:
        """Join dead letters with the latest mark per id (later offsets win, as compaction keeps)."""
        marks = latest_marks(mark_records)
        index = cls(truncated=truncated)
        for record in dead_records:
            try:
                dead = DeadLetter.model_validate_json(record.value or b"")
            except ValidationError:
                index.unreadable.append((record.partition, record.offset))
                continue
            index.entries[dead.id] = DlqEntry(
                dead=dead,
                partition=record.partition,
                offset=record.offset,
                timestamp_ms=record.timestamp,
                key=record.key,
                headers=tuple(record.headers),
                mark=marks.get(dead.id),
            )
        return index

    def select(self, criteria: DlqFilter) -> list[DlqEntry]:
        """Matching entries, newest first, at most ``criteria.limit``."""
        found = [e for e in self.entries.values() if criteria.matches(e.dead, e.mark_state)]
        found.sort(key=lambda e: (e.dead.dead_at, e.id), reverse=True)
        return found[: criteria.limit] if criteria.limit else found

    def counts(self, criteria: DlqFilter | None = None) -> list[tuple[str, int]]:
        """Dead letters per final error class, largest first (limit ignored: counts are totals)."""
        base = criteria or DlqFilter()
        wanted = DlqFilter(**{**base.__dict__, "limit": None})
        counter = Counter(e.dead.final_error.error_class for e in self.select(wanted))
        return sorted(counter.items(), key=lambda item: (-item[1], item[0]))

    def find(self, id_or_prefix: str) -> DlqEntry | None:
        """By full id, or by a unique prefix (operators paste the first characters of a uuid)."""
        if entry := self.entries.get(id_or_prefix):
            return entry
        hits = [e for key, e in self.entries.items() if key.startswith(id_or_prefix)] if id_or_prefix else []
        if len(hits) > 1:
            raise AmbiguousId(f"{id_or_prefix!r} matches {len(hits)} dead letters; give more characters")
        return hits[0] if hits else None

    def related(self, entry: DlqEntry) -> list[DlqEntry]:
        """Other dead letters of the same envelope (other destinations, or after an earlier replay)."""
        envelope_id = entry.dead.envelope.id
        others = [e for e in self.entries.values() if e.dead.envelope.id == envelope_id and e.id != entry.id]
        return sorted(others, key=lambda e: e.dead.dead_at)


async def load_index(
    bootstrap: KafkaTarget, topics: PipelineTopics, *, max_records: int = 200_000, timeout: float = 30.0
) -> DlqIndex:
    """Read both topics (concurrently) and build the index; see the module docstring for the bounds."""
    dead, marks = await asyncio.gather(
        read_snapshot(bootstrap, topics.dlq, max_records=max_records, timeout=timeout),
        read_snapshot(bootstrap, topics.dlq_state, max_records=max_records, timeout=timeout),
    )
    if marks.truncated:
        log.warning("%s has over %d records; marks may be missing", topics.dlq_state, max_records)
    return DlqIndex.build(dead.records, marks.records, truncated=dead.truncated or marks.truncated)
