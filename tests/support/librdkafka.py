"""Producing as an upstream gateway on confluent-kafka would: librdkafka's default partitioner.

librdkafka's ``consistent_random`` hashes a key with CRC32 (random for no key); the Java client,
aiokafka and so the edge use murmur2. The same key may land on different partitions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, Message, Producer

from services.config import KafkaSettings
from services.kafka.clients import KafkaTarget, kafka_settings

Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]


def librdkafka_config(kafka: KafkaTarget) -> dict[str, str | bool]:
    """The librdkafka configuration for the cluster and security ``kafka`` describes (its key names)."""
    settings: KafkaSettings = kafka_settings(kafka)
    config: dict[str, str | bool] = {
        "bootstrap.servers": settings.servers,
        "client.id": settings.client_id,
        "security.protocol": settings.security_protocol,
    }
    if settings.uses_sasl:
        if settings.sasl_mechanism == "OAUTHBEARER":
            raise ValueError("OAUTHBEARER needs librdkafka's own token callback (oauth_cb); not mapped")
        assert settings.sasl_mechanism and settings.sasl_username and settings.sasl_password
        config["sasl.mechanisms"] = settings.sasl_mechanism
        config["sasl.username"] = settings.sasl_username
        config["sasl.password"] = settings.sasl_password.get_secret_value()
    if settings.uses_tls:
        files = {
            "ssl.ca.location": settings.ssl_cafile,
            "ssl.certificate.location": settings.ssl_certfile,
            "ssl.key.location": settings.ssl_keyfile,
        }
        config.update({key: str(path.expanduser()) for key, path in files.items() if path is not None})
        config["ssl.endpoint.identification.algorithm"] = "https" if settings.ssl_check_hostname else "none"
    return config


def librdkafka_produce(kafka: KafkaTarget, topic: str, records: Sequence[Record]) -> list[int]:
    """Produce with librdkafka's own default partitioner (blocking); the partition of each record."""
    producer = Producer({**librdkafka_config(kafka), "enable.idempotence": True, "acks": "all"})
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
