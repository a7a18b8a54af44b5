"""Producing as an upstream gateway on confluent-kafka would: librdkafka's default partitioner.

librdkafka's ``consistent_random`` hashes a key with CRC32 (random for no key); the Java client,
aiokafka and so the edge use murmur2. The same key may land on different partitions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, Message, Producer

Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]


def librdkafka_produce(bootstrap: str, topic: str, records: Sequence[Record]) -> list[int]:
    """Produce with librdkafka's own default partitioner (blocking); the partition of each record."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    partitions: list[int] = [-1] * len(records)
    errors: list[KafkaError] = []

    def delivered(index: int) -> Callable[[KafkaError | None, Message], None]:
        def report(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                errors.append(error)
            elif (partition := message.partition()) is not None:  # None only before delivery
                partitions[index] = partition

        return report

    for index, (key, value, headers) in enumerate(records):
        wire: list[tuple[str, str | bytes | None]] = list(headers)  # the stubs' header type, invariant
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=wire, on_delivery=delivered(index))
                break
            except BufferError:  # librdkafka's local queue is full: let it deliver some first
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0 and not errors, errors
    return partitions
