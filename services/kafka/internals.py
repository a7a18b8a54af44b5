"""Every use of aiokafka's private members outside the group fencing, each in one named function.

aiokafka 0.14 has no public way to do any of these; each function says why it needs one. They are
checked against the installed aiokafka by ``tests/unit/kafka/test_internals.py``, so an upgrade that
moves a member fails there with its name, not in production. :mod:`services.kafka.group_fencing`
(KIP-447, which replaces two of aiokafka's request handlers) is the other half of the boundary.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

__all__ = [
    "cluster_metadata",
    "fail_pending",
    "group_coordinator",
    "in_transaction",
    "refresh_metadata",
    "wait_for_committed_offsets",
]


def group_coordinator(consumer: AIOKafkaConsumer) -> Any:
    """The consumer's group coordinator (``None`` before ``start()``).

    The group generation, the member id and whether a coordinator is known live only there:
    readiness probes and the generation fencing need them, and rejoining after a fenced commit
    (what aiokafka does after its own failed commit) is only possible through it.
    """
    return consumer._coordinator


async def wait_for_committed_offsets(consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> None:
    """Fetch the group's committed offsets of ``partitions`` through the consumer's coordinator.

    ``AIOKafkaConsumer.committed`` asks one partition at a time and answers from a cache; with the
    stable offset fetch installed (:func:`services.kafka.group_fencing.read_stable_offsets`) this
    returns only once no open transaction holds offsets for any of ``partitions``.
    """
    await consumer._coordinator.fetch_committed_offsets(partitions)


def in_transaction(producer: AIOKafkaProducer) -> bool:
    """Whether ``producer`` has a transaction open (so that it must be aborted).

    aiokafka raises from ``abort_transaction`` when none is open and exposes no state to ask first.
    """
    txn_manager = producer._txn_manager
    return txn_manager is not None and bool(txn_manager.is_in_transaction())


def fail_pending(producer: AIOKafkaProducer, exc: BaseException) -> None:
    """Fail every batch ``producer`` still holds with ``exc``.

    There is no public way to give up on a batch: ``stop()`` waits for each one, for ever when no
    broker answers.
    """
    producer._message_accumulator.fail_all(exc)


async def cluster_metadata(client: AIOKafkaProducer | AIOKafkaConsumer) -> Any:
    """Fresh metadata of the whole cluster (a ``ClusterMetadata``), on the client's own connections.

    The clients answer ``partitions_for``/``partitions_for_topic`` for one topic, waiting for it (or
    creating it, with auto-creation on); this asks without either, and tells whether a broker answers.
    """
    kafka_client = client.client if isinstance(client, AIOKafkaProducer) else client._client
    return await kafka_client.fetch_all_metadata()


async def refresh_metadata(consumer: AIOKafkaConsumer) -> None:
    """Refresh the consumer's metadata of every topic, so ``partitions_for_topic`` sees new ones.

    A consumer learns topics only as it subscribes to them; an operator reading an arbitrary topic
    once would otherwise see it as missing.
    """
    await consumer._client.force_metadata_update()
