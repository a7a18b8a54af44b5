"""Every aiokafka client Breakwater runs is built here, from :class:`services.config.KafkaSettings`.

What every client shares (where the cluster is, the client id, TLS and SASL) is applied in one
function, :func:`connection_options`; each builder adds only its role's options, typed, so a caller
cannot pass connection options of its own::

    producer = clients.producer(settings.kafka, client_id="breakwater-alerts")
    consumer = clients.consumer(settings.kafka, "webhooks.events", auto_offset_reset="earliest")

Breakwater's defaults are the safe ones: producers write ``acks=all`` with idempotence on, consumers
read committed records only and commit their own offsets (or none). Every use of aiokafka's private
members is in :mod:`services.kafka.internals`.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any, Literal, TypeAlias, TypedDict, Unpack

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

from services.config import ConfigError, KafkaSettings, import_reference

__all__ = [
    "AdminOptions",
    "ConsumerOptions",
    "KafkaTarget",
    "ProducerOptions",
    "admin",
    "connection_options",
    "consumer",
    "kafka_settings",
    "producer",
    "ssl_context",
    "token_provider",
]

KafkaTarget: TypeAlias = KafkaSettings | str
"""A cluster: the settings, or a bare ``host:port,...`` for callers without settings (tests, tools, an
upstream gateway), which stands for ``KafkaSettings(bootstrap=...)`` with every other option default."""


class ProducerOptions(TypedDict, total=False):
    """A producer's role: aiokafka's option names; what is left out keeps aiokafka's default."""

    transactional_id: str
    transaction_timeout_ms: int
    acks: Literal[0, 1, "all"]
    enable_idempotence: bool
    linger_ms: int
    max_batch_size: int
    max_request_size: int
    retry_backoff_ms: int
    request_timeout_ms: int


class ConsumerOptions(TypedDict, total=False):
    """A consumer's role: aiokafka's option names; what is left out keeps aiokafka's default."""

    group_id: str
    isolation_level: Literal["read_committed", "read_uncommitted"]
    enable_auto_commit: bool
    auto_offset_reset: Literal["earliest", "latest", "none"]
    max_poll_records: int
    fetch_max_wait_ms: int
    max_partition_fetch_bytes: int
    session_timeout_ms: int
    heartbeat_interval_ms: int
    max_poll_interval_ms: int


class AdminOptions(TypedDict, total=False):
    request_timeout_ms: int


def kafka_settings(target: KafkaTarget) -> KafkaSettings:
    """The settings ``target`` stands for (see :data:`KafkaTarget`)."""
    return KafkaSettings(bootstrap=target) if isinstance(target, str) else target


def connection_options(kafka: KafkaTarget, client_id: str | None = None) -> dict[str, Any]:
    """The options every client gets: the cluster, ``client_id`` (default ``kafka.client_id``), and
    the security settings (TLS context, SASL mechanism and credentials or token provider)."""
    settings = kafka_settings(kafka)
    options: dict[str, Any] = {
        "bootstrap_servers": settings.servers,
        "client_id": client_id or settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    if settings.uses_tls:
        options["ssl_context"] = ssl_context(settings)
    if settings.uses_sasl:
        options["sasl_mechanism"] = settings.sasl_mechanism
        if settings.sasl_mechanism == "OAUTHBEARER":
            options["sasl_oauth_token_provider"] = token_provider(settings)
        else:
            assert settings.sasl_password is not None  # KafkaSettings checks it at load
            options["sasl_plain_username"] = settings.sasl_username
            options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options


@functools.lru_cache(maxsize=16)
def ssl_context(settings: KafkaSettings) -> ssl.SSLContext:
    """One TLS context per settings (the files are read once), shared by every client built from them."""
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.ssl_cafile and str(settings.ssl_cafile.expanduser()),
        certfile=settings.ssl_certfile and str(settings.ssl_certfile.expanduser()),
        keyfile=settings.ssl_keyfile and str(settings.ssl_keyfile.expanduser()),
    )
    context.check_hostname = settings.ssl_check_hostname
    return context


@functools.lru_cache(maxsize=16)
def token_provider(settings: KafkaSettings) -> AbstractTokenProvider:
    """The OAUTHBEARER token provider ``kafka.sasl_oauth_token_provider`` names, made once, so every
    client shares its cached token."""
    assert settings.sasl_oauth_token_provider is not None  # KafkaSettings checks it at load
    provider = import_reference(settings.sasl_oauth_token_provider)(settings)
    if not isinstance(provider, AbstractTokenProvider):
        raise ConfigError(
            f"kafka.sasl_oauth_token_provider {settings.sasl_oauth_token_provider} returned "
            f"{type(provider).__name__}, not an aiokafka AbstractTokenProvider"
        )
    return provider


def producer(
    kafka: KafkaTarget, *, client_id: str | None = None, **role: Unpack[ProducerOptions]
) -> AIOKafkaProducer:
    """An unstarted producer; ``acks=all`` with idempotence unless ``role`` says otherwise."""
    options: dict[str, Any] = {"acks": "all", "enable_idempotence": True, **role}
    return AIOKafkaProducer(**connection_options(kafka, client_id), **options)


def consumer(
    kafka: KafkaTarget, *topics: str, client_id: str | None = None, **role: Unpack[ConsumerOptions]
) -> AIOKafkaConsumer:
    """An unstarted consumer of ``topics`` (or none: assign later); committed records, no auto-commit."""
    options: dict[str, Any] = {"isolation_level": "read_committed", "enable_auto_commit": False, **role}
    return AIOKafkaConsumer(*topics, **connection_options(kafka, client_id), **options)


def admin(
    kafka: KafkaTarget, *, client_id: str | None = None, **role: Unpack[AdminOptions]
) -> AIOKafkaAdminClient:
    """An unstarted admin client."""
    return AIOKafkaAdminClient(**connection_options(kafka, client_id), **role)
