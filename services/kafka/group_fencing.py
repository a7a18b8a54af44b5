"""KIP-447 for aiokafka: offsets committed in a transaction are fenced by the consumer group generation.

aiokafka 0.14 sends ``TxnOffsetCommit`` v0, which carries no group generation, and reads committed
offsets with ``OffsetFetch`` v3, which does not wait for transactions still open. Together they let a
*live zombie* commit twice what another worker already did: a worker stalls mid-batch (a long GC-free
but CPU-starved pause, a broker stop that moves the group coordinator, a slow destination), the group
drops it and gives its partitions to another worker, which re-reads from the last committed offset, and
then the first worker wakes up and commits the same batch. Transactional ids are per worker, so nothing
fences it. ``make test-scale`` saw exactly this when a broker was stopped mid-storm.

This module adds the two halves of KIP-447 (as the Java client does since Kafka 2.5):

* :func:`fence_offsets_by_generation` makes the producer send ``TxnOffsetCommit`` v3 with the group
  generation and member id under which the batch was *fetched*. The group coordinator rejects a stale
  one (``ILLEGAL_GENERATION``, ``UNKNOWN_MEMBER_ID``, ...); the transaction then fails with
  :class:`GroupFenced` and is aborted, so the zombie's outputs never become visible.
* :func:`read_stable_offsets` makes the consumer read committed offsets with ``OffsetFetch`` v7 and
  ``require_stable``: while a transaction holding offsets for a partition is still open the broker
  answers ``UNSTABLE_OFFSET_COMMIT`` and the read is retried, so a new owner starts after whatever the
  old owner's last transaction settles on, never before it.

Both install themselves on one client instance (aiokafka has no hook for either); the request structs
follow the Kafka protocol definitions (``TxnOffsetCommitRequest.json``, ``OffsetFetchRequest.json``).
Like :mod:`services.kafka.internals` this module leans on aiokafka's private members (the producer's
sender and transaction manager, the coordinator's request path); ``tests/unit/kafka/test_internals.py``
checks that each one is still there.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka import errors as Errors
from aiokafka.client import CoordinationType
from aiokafka.producer.sender import TxnOffsetCommitHandler
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)
from aiokafka.structs import OffsetAndMetadata

from services.errors import BreakwaterError
from services.kafka.internals import group_coordinator

__all__ = [
    "GroupFenced",
    "Membership",
    "fence_offsets_by_generation",
    "read_stable_offsets",
    "rejoin_after",
]

log = logging.getLogger(__name__)

NO_GENERATION = -1
NO_OFFSET = -1
# errors a TxnOffsetCommit gets when the group moved on without this member (FENCED_INSTANCE_ID is 82)
_FENCING_ERRORS = frozenset({22, 25, 27, 82})


class GroupFenced(BreakwaterError, Errors.KafkaError):  # type: ignore[misc]  # aiokafka's errors are untyped
    """The consumer group no longer has this member at this generation: abort, re-read, carry on."""

    retriable = False

    def __init__(self, message: str, error_code: int | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code


def rejoin_after(consumer: AIOKafkaConsumer, fenced: GroupFenced) -> None:
    """Make the consumer rejoin now, as aiokafka does after its own commit fails this way.

    Until its heartbeat notices, the consumer would keep fetching under the dead generation, and every
    batch would be processed (destinations called) only to be fenced again.
    """
    coordinator = group_coordinator(consumer)
    if coordinator is None or fenced.error_code is None:
        return
    if fenced.error_code == Errors.RebalanceInProgressError.errno:
        coordinator.request_rejoin()
    else:
        coordinator.reset_generation()


class UnstableOffsetCommit(BreakwaterError, Errors.KafkaError):  # type: ignore[misc]
    """A transaction holding offsets for the partition is still open (error 88); ask again shortly."""

    errno = 88
    retriable = True  # what aiokafka's coordinator asks before it retries
    retryable = True


@dataclass(frozen=True, slots=True)
class Membership:
    """Who fetched a batch: the group generation and member id at that moment."""

    generation: int
    member_id: str

    @classmethod
    def of(cls, consumer: AIOKafkaConsumer) -> Membership | None:
        """The consumer's current membership, or ``None`` while it is not a member of a generation."""
        coordinator = group_coordinator(consumer)
        if coordinator is None or coordinator.generation < 0 or not coordinator.member_id:
            return None
        return cls(coordinator.generation, coordinator.member_id)


_STRING = CompactString("utf-8")


def _tagged(*fields: tuple[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A flexible-version struct: its fields, then its tagged fields."""
    return (*fields, ("tags", TaggedFields))


def _topics(*partition_fields: tuple[str, Any]) -> tuple[str, Any]:
    """The ``topics: [{name, partitions: [...]}]`` field these requests and responses share."""
    return (
        "topics",
        CompactArray(*_tagged(("name", _STRING), ("partitions", CompactArray(*_tagged(*partition_fields))))),
    )


class TxnOffsetCommitResponse_v3(Response):  # type: ignore[misc]  # aiokafka's protocol classes are untyped
    API_KEY = 28
    API_VERSION = 3
    SCHEMA = Schema(
        *_tagged(("throttle_time_ms", Int32), _topics(("partition_index", Int32), ("error_code", Int16)))
    )


class TxnOffsetCommitRequest_v3(RequestStruct):  # type: ignore[misc]  # aiokafka's protocol classes are untyped
    FLEXIBLE_VERSION = True
    API_KEY = 28
    API_VERSION = 3
    RESPONSE_TYPE = TxnOffsetCommitResponse_v3
    SCHEMA = Schema(
        *_tagged(
            ("transactional_id", _STRING),
            ("group_id", _STRING),
            ("producer_id", Int64),
            ("producer_epoch", Int16),
            ("generation_id", Int32),
            ("member_id", _STRING),
            ("group_instance_id", _STRING),
            _topics(
                ("partition_index", Int32),
                ("committed_offset", Int64),
                ("committed_leader_epoch", Int32),
                ("committed_metadata", _STRING),
            ),
        )
    )


class FencedTxnOffsetCommitRequest(Request[TxnOffsetCommitRequest_v3]):  # type: ignore[misc]  # aiokafka's protocol classes are untyped
    """``TxnOffsetCommit`` with the group generation; only v3 (Kafka 2.5+) carries it."""

    API_KEY = 28

    def __init__(
        self,
        *,
        transactional_id: str,
        group_id: str,
        producer_id: int,
        producer_epoch: int,
        membership: Membership,
        offsets: dict[TopicPartition, OffsetAndMetadata],
    ) -> None:
        by_topic: dict[str, list[tuple[int, int, int, str, dict[int, bytes]]]] = collections.defaultdict(list)
        for tp, offset in sorted(offsets.items()):
            by_topic[tp.topic].append((tp.partition, offset.offset, -1, offset.metadata, {}))
        self._fields: tuple[Any, ...] = (
            transactional_id,
            group_id,
            producer_id,
            producer_epoch,
            membership.generation,
            membership.member_id,
            None,  # group.instance.id: static membership is not used
            [(topic, partitions, {}) for topic, partitions in by_topic.items()],
            {},
        )

    def build(self, request_struct_class: type[TxnOffsetCommitRequest_v3]) -> TxnOffsetCommitRequest_v3:
        return request_struct_class(*self._fields)


class _FencedTxnOffsetCommitHandler(TxnOffsetCommitHandler):  # type: ignore[misc]
    def __init__(self, sender: Any, offsets: Any, group_id: str, membership: Membership) -> None:
        super().__init__(sender, offsets, group_id)
        self._membership = membership

    def create_request(self) -> FencedTxnOffsetCommitRequest:
        txn = self._sender._txn_manager
        return FencedTxnOffsetCommitRequest(
            transactional_id=txn.transactional_id,
            group_id=self._group_id,
            producer_id=txn.producer_id,
            producer_epoch=txn.producer_epoch,
            membership=self._membership,
            offsets=self._offsets,
        )

    def handle_response(self, resp: Any) -> float | None:
        for topic, partitions, _ in resp.topics:
            for partition, error_code, _ in partitions:
                if error_code in _FENCING_ERRORS:
                    _refuse(
                        self._sender._txn_manager,
                        GroupFenced(
                            f"group {self._group_id!r} moved past generation {self._membership.generation}"
                            f" (error {error_code} for {topic}[{partition}])",
                            error_code,
                        ),
                    )
                    return None
        # every other outcome (success, coordinator moved, retriable) as aiokafka handles v0
        as_v0 = _V0Errors([(topic, [(p, e) for p, e, _ in parts]) for topic, parts, _ in resp.topics])
        backoff: float | None = super().handle_response(as_v0)
        return backoff


class _V0Errors(NamedTuple):
    """A v3 response seen through the one field aiokafka's v0 handler reads."""

    errors: list[tuple[str, list[tuple[int, int]]]]


def _refuse(txn_manager: Any, exc: GroupFenced) -> None:
    """Fail the pending ``send_offsets_to_transaction`` and leave the transaction open for an abort.

    Not ``error_transaction``: aiokafka's abortable-error path forgets the partitions already in the
    transaction, so the following ``abort_transaction`` looks empty and sends no ``EndTxn``; the broker
    keeps the transaction open and the next one (same producer epoch) would commit its records too.
    """
    _group_id, _offsets, future = txn_manager._pending_txn_offsets.popleft()
    future.set_exception(exc)


class GenerationSlot:
    """The membership the next ``send_offsets_to_transaction`` on one producer is fenced with."""

    current: Membership | None = None


def fence_offsets_by_generation(producer: AIOKafkaProducer) -> GenerationSlot:
    """Make ``producer``'s transactional offset commits carry the membership set in the returned slot.

    Set ``slot.current`` before each ``send_offsets_to_transaction``. With no membership set, the
    commit is refused rather than sent unfenced.
    """
    slot = GenerationSlot()
    sender = producer._sender

    async def commit(offsets: Any, group_id: str) -> None:
        if not offsets:
            return
        membership = slot.current
        if membership is None:
            _refuse(sender._txn_manager, GroupFenced(f"not a member of group {group_id!r}"))
            return
        try:
            node_id = await sender._find_coordinator(CoordinationType.GROUP, group_id)
        except Errors.GroupAuthorizationFailedError as exc:
            sender._txn_manager.error_transaction(exc)
            return
        await _FencedTxnOffsetCommitHandler(sender, offsets, group_id, membership).do(node_id)

    sender._do_txn_offset_commit = commit
    return slot


class OffsetFetchResponse_v7(Response):  # type: ignore[misc]  # aiokafka's protocol classes are untyped
    API_KEY = 9
    API_VERSION = 7
    SCHEMA = Schema(
        *_tagged(
            ("throttle_time_ms", Int32),
            _topics(
                ("partition_index", Int32),
                ("committed_offset", Int64),
                ("committed_leader_epoch", Int32),
                ("metadata", _STRING),
                ("error_code", Int16),
            ),
            ("error_code", Int16),
        )
    )


class OffsetFetchRequest_v7(RequestStruct):  # type: ignore[misc]  # aiokafka's protocol classes are untyped
    FLEXIBLE_VERSION = True
    API_KEY = 9
    API_VERSION = 7
    RESPONSE_TYPE = OffsetFetchResponse_v7
    SCHEMA = Schema(
        *_tagged(
            ("group_id", _STRING),
            (
                "topics",
                CompactArray(*_tagged(("name", _STRING), ("partition_indexes", CompactArray(Int32)))),
            ),
            ("require_stable", Boolean),
        )
    )


class StableOffsetFetchRequest(Request[OffsetFetchRequest_v7]):  # type: ignore[misc]  # aiokafka's protocol classes are untyped
    """``OffsetFetch`` that waits out open transactions; ``require_stable`` exists from v7 (Kafka 2.5)."""

    API_KEY = 9

    def __init__(self, group_id: str, partitions: Iterable[TopicPartition]) -> None:
        by_topic: dict[str, list[int]] = collections.defaultdict(list)
        for tp in partitions:
            by_topic[tp.topic].append(tp.partition)
        self._fields: tuple[Any, ...] = (
            group_id,
            [(topic, sorted(ps), {}) for topic, ps in by_topic.items()],
            True,
            {},
        )

    def build(self, request_struct_class: type[OffsetFetchRequest_v7]) -> OffsetFetchRequest_v7:
        return request_struct_class(*self._fields)


def read_stable_offsets(consumer: AIOKafkaConsumer) -> None:
    """Make ``consumer`` (started, before ``subscribe``) read only settled committed offsets."""
    coordinator = group_coordinator(consumer)

    async def fetch(partitions: Iterable[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
        response = await coordinator._send_req(StableOffsetFetchRequest(coordinator.group_id, partitions))
        _raise_group_error(coordinator, response.error_code)
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for topic, topic_partitions, _ in response.topics:
            for partition, offset, _epoch, metadata, error_code, _ in topic_partitions:
                tp = TopicPartition(topic, partition)
                if error_code == UnstableOffsetCommit.errno:
                    log.debug("committed offset of %s waits for an open transaction", tp)
                    raise UnstableOffsetCommit(str(tp))
                if error_code == Errors.UnknownTopicOrPartitionError.errno:
                    log.warning("OffsetFetch: unknown topic %s", topic)
                    continue
                _raise_group_error(coordinator, error_code)
                if offset != NO_OFFSET:
                    offsets[tp] = OffsetAndMetadata(offset, metadata or "")
        return offsets

    coordinator._do_fetch_commit_offsets = fetch


def _raise_group_error(coordinator: Any, error_code: int) -> None:
    """Raise what aiokafka's own OffsetFetch handling raises for ``error_code`` (retriable or not)."""
    if error_code == 0:
        return
    error_type = Errors.for_code(error_code)
    if error_type is Errors.NotCoordinatorForGroupError:
        coordinator.coordinator_dead()
        raise error_type()
    if error_type in (Errors.GroupLoadInProgressError, Errors.GroupCoordinatorNotAvailableError):
        raise error_type()
    if error_type is Errors.GroupAuthorizationFailedError:
        raise error_type(coordinator.group_id)
    raise Errors.KafkaError(f"OffsetFetch failed: {error_type.__name__}")
