"""The types a transactional loop and its handlers share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

Headers: TypeAlias = Sequence[tuple[str, bytes]]
Record: TypeAlias = ConsumerRecord[bytes, bytes]
Batch: TypeAlias = Mapping[TopicPartition, list[Record]]
Origin: TypeAlias = tuple[str, int, int]
"""Topic, partition and offset of the input record an output was made from."""


@dataclass(slots=True)
class Out:
    """One record to produce inside the batch's transaction (not frozen: handlers stamp ``origin``)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    partition: int | None = None
    follow: TopicPartition | None = None
    """The source partition; used when the target has as many partitions (see streams.batching)."""
    origin: Origin | None = None
    """The input record it came from: named in its bounded replacement if it can never be stored."""


@dataclass(slots=True)
class Outcome:
    """What a handler made of a batch.

    ``stop_at`` names partitions not consumed to the end of the batch (next offset to read); the loop
    commits that offset, seeks back to it and keeps the partition paused until ``resume_at`` (loop time).
    """

    records: list[Out] = field(default_factory=list)
    stop_at: dict[TopicPartition, int] = field(default_factory=dict)
    resume_at: dict[TopicPartition, float] = field(default_factory=dict)


class Handler(Protocol):
    async def on_assigned(self, partitions: set[TopicPartition]) -> None: ...

    async def on_revoked(self, partitions: set[TopicPartition]) -> None: ...

    async def handle(self, batch: Batch) -> Outcome: ...

    def maintain(self) -> list[Out]:
        """Housekeeping records (e.g. expiry tombstones) to add to the next transaction."""

    def on_committed(self, last_offsets: dict[TopicPartition, int]) -> None:
        """The transaction committed; ``last_offsets`` is the last offset written to each partition."""

    def on_aborted(self) -> None: ...


class StatelessHandler:
    """The lifecycle hooks of a :class:`Handler` that keeps no state of its own (dispatch, retry tiers)."""

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        return None

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        return None

    def maintain(self) -> list[Out]:
        return []

    def on_committed(self, last_offsets: dict[TopicPartition, int]) -> None:
        return None

    def on_aborted(self) -> None:
        return None
