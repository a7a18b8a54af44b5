"""Breakwater's one settings model.

Scalars come from environment variables prefixed ``BREAKWATER_`` (nested with ``__``, e.g.
``BREAKWATER_EDGE__PORT=8080``); the parts that are lists or maps (providers, secrets references,
signing keys, routes, limits) come from a TOML file named by ``--config`` or ``BREAKWATER_CONFIG``.
Environment wins over the file. Nothing else in the code base reads ``os.environ``.

Secrets are written as references, resolved once at load time::

    secrets = ["env:STRIPE_WEBHOOK_SECRET", "file:/run/secrets/stripe", "whsec_literal_for_dev_only"]

A bad setting fails at start with the field's dotted name (see :func:`load_settings`).
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from schemas.limits import ENVELOPE_MAX_BYTES
from schemas.providers import KINDS, ProviderKind
from schemas.topics import DEFAULT_APP_ID, EVENTS, TopicSpec, topic_catalogue
from services.errors import BreakwaterError
from services.operators.config import OperatorSettings
from services.outbound.config import APISettings, BreakerSettings, RateLimitSettings
from services.reliability.config import ServiceSettings, validate_dependency_graph
from services.secrets import Secret
from services.settings_base import Section
from services.standard_webhooks import SECRET_PREFIX, decode_secret

ENV_PREFIX = "BREAKWATER_"
CONFIG_ENV = f"{ENV_PREFIX}CONFIG"
BOOTSTRAP_ENV = f"{ENV_PREFIX}KAFKA__BOOTSTRAP"
SHORT_BOOTSTRAP_ENV = f"{ENV_PREFIX}KAFKA_BOOTSTRAP"  # the documented short form; the nested one wins


def bootstrap_from_env() -> str | None:
    """The existing cluster the environment names, in either spelling, for tools without a config file."""
    return os.environ.get(BOOTSTRAP_ENV) or os.environ.get(SHORT_BOOTSTRAP_ENV) or None


DedupMode = Literal["event_id", "body", "body_and_type"]
"""What a provider's events are deduplicated on (streams/dedup_store.py ``dedup_identity``)."""
# GitHub and Shopify sign the body only: their event id (and type) are headers anyone holding a captured
# body and signature can change, so a re-post under a fresh id must be caught by the body. Shopify sends
# one body under several topics (an order paid at checkout: orders/create, orders/paid, orders/updated;
# any subscription with a ``fields`` filter), so a body under a topic it has not carried yet is a new
# event there. Every other kind signs its event id.
DEFAULT_DEDUP: dict[str, DedupMode] = {"github": "body", "shopify": "body_and_type"}
PROVIDER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


class ConfigError(BreakwaterError):
    """The configuration cannot be used; the message names the field (or the file and line)."""


class RateLimit(Section):
    """A token bucket: ``rate`` tokens a second, up to ``burst`` at once."""

    rate: float = Field(gt=0)
    burst: int = Field(default=1, ge=1)


class ProviderSettings(Section):
    """One webhook source. The URL path names it: ``POST /webhooks/{name}``."""

    kind: ProviderKind | None = None
    secrets: list[Secret] = Field(default_factory=list)
    tolerance_seconds: int = Field(default=300, ge=1)
    admission: RateLimit | None = None
    dedup: DedupMode | None = None
    """``event_id``: the provider's event id. ``body``: the signed body, so a body re-posted under a fresh
    id is a replay. ``body_and_type``: the body per event type, so one body under another type is a new
    event. Default ``body`` for github, ``body_and_type`` for shopify, ``event_id`` for the kinds whose
    signature covers the event id. Switching to or from ``event_id`` starts the window afresh."""
    # PayPal only: the webhook id PayPal assigned, and where certificates may come from.
    webhook_id: str | None = None
    cert_hosts: list[str] = Field(default_factory=lambda: ["api.paypal.com", "api.sandbox.paypal.com"])


class LocalKafkaSettings(Section):
    """The embedded single-node broker that ``breakwater kafka start`` runs."""

    version: str = "4.1.1"
    home: Path = Path(".breakwater/kafka")
    """Config, pid file, and by default the data and the log, live here."""
    data_dir: Path | None = None
    log_file: Path | None = None
    cache_dir: Path = Field(
        default_factory=lambda: Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "breakwater"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=9092, ge=1, le=65535)
    controller_port: int = Field(default=9093, ge=1, le=65535)
    heap: str = "1g"
    start_timeout_seconds: float = Field(default=90, gt=0)
    secure: bool = False
    """SASL_SSL (SCRAM-SHA-512) with a generated CA, one user per role and ACLs (``kafka start --secure``)."""


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
TOKEN_PROVIDER_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def import_reference(reference: str) -> Any:
    """The object a ``module:attribute`` reference names; ValueError saying what is missing."""
    import importlib

    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name}: {exc}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"module {module_name} has no {attribute}") from None


class TelemetrySettings(Section):
    """Where metrics and traces go (:mod:`services.telemetry` sets them up)."""

    otlp_endpoint: str | None = None
    """OTLP/HTTP collector base URL (e.g. http://otel-collector:4318); none means Prometheus only."""
    export_interval_seconds: float = Field(default=15.0, gt=0)
    log_format: Literal["json", "text"] = "json"


MSK_TOKEN_PROVIDER = "services.kafka.msk:token_provider"
"""Amazon MSK IAM (the ``msk`` extra): it signs with ``aws_region``, so that is checked at start too."""


class KafkaSettings(Section):
    """Where the cluster is and how every client authenticates to it (applied in services/kafka/clients.py).

    A SASL_SSL cluster with SCRAM (Confluent Cloud uses PLAIN, with an API key and secret)::

        [kafka]
        bootstrap = "b-1.example.com:9096"
        security_protocol = "SASL_SSL"
        sasl_mechanism = "SCRAM-SHA-512"
        sasl_username = "breakwater-worker"
        sasl_password = "env:KAFKA_PASSWORD"
    """

    bootstrap: str | None = None
    """An existing cluster (``host:port,...``). When set, nothing is started locally."""
    local: LocalKafkaSettings = Field(default_factory=LocalKafkaSettings)
    client_id: str = "breakwater"
    request_timeout_ms: int = Field(default=15_000, ge=1000)
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    """A secret reference (``env:NAME``, ``file:PATH``)."""
    sasl_oauth_token_provider: str | None = None
    """OAUTHBEARER: ``module:callable``, called with this section, returning an aiokafka
    ``AbstractTokenProvider``; ``services.kafka.msk:token_provider`` signs for MSK IAM (extra ``msk``)."""
    aws_region: str | None = None
    """The AWS region MSK IAM tokens are signed for."""
    ssl_cafile: Path | None = None
    """PEM certificates of the CAs the broker's certificate is checked against (default: the system's)."""
    ssl_certfile: Path | None = None
    """Mutual TLS: this client's PEM certificate chain (with ``ssl_keyfile``)."""
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True

    @property
    def servers(self) -> str:
        return self.bootstrap or f"{self.local.host}:{self.local.port}"

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @model_validator(mode="after")
    def _security_consistent(self) -> KafkaSettings:
        """The security options fit together: each problem names its fields."""
        problems: list[str] = []
        protocol = f"security_protocol {self.security_protocol}"
        if self.uses_sasl:
            if self.sasl_mechanism is None:
                problems.append(f"{protocol} needs sasl_mechanism")
            elif self.sasl_mechanism == "OAUTHBEARER":
                if self.sasl_oauth_token_provider is None:
                    problems.append("sasl_mechanism OAUTHBEARER needs sasl_oauth_token_provider")
                given = [n for n in ("sasl_username", "sasl_password") if getattr(self, n) is not None]
                if given:
                    problems.append(f"{' and '.join(given)} given but OAUTHBEARER takes a token provider")
            else:
                missing = [n for n in ("sasl_username", "sasl_password") if getattr(self, n) is None]
                if missing:
                    problems.append(f"sasl_mechanism {self.sasl_mechanism} needs {' and '.join(missing)}")
        else:
            sasl = ("sasl_mechanism", "sasl_username", "sasl_password", "sasl_oauth_token_provider")
            given = [n for n in sasl if getattr(self, n)]
            if given:
                problems.append(f"{', '.join(given)} given but {protocol} does not use SASL")
        if (
            self.sasl_oauth_token_provider is not None
            and self.uses_sasl
            and self.sasl_mechanism != "OAUTHBEARER"
        ):
            problems.append(f"sasl_oauth_token_provider given but sasl_mechanism is {self.sasl_mechanism}")
        if self.aws_region and self.sasl_oauth_token_provider is None:
            problems.append("aws_region given but no sasl_oauth_token_provider uses it")
        if self.sasl_oauth_token_provider == MSK_TOKEN_PROVIDER and not self.aws_region:
            problems.append(f"sasl_oauth_token_provider {MSK_TOKEN_PROVIDER} needs aws_region")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            problems.append("ssl_certfile and ssl_keyfile go together (mutual TLS needs both)")
        files = ("ssl_cafile", "ssl_certfile", "ssl_keyfile")
        if not self.uses_tls and any(getattr(self, n) for n in files):
            problems.append(f"ssl_* files given but {protocol} does not use TLS")
        for name in files:
            path = getattr(self, name)
            if path is not None and not Path(path).expanduser().is_file():
                problems.append(f"{name} {path} does not exist")
        if self.sasl_oauth_token_provider is not None and self.sasl_mechanism == "OAUTHBEARER":
            reference = self.sasl_oauth_token_provider
            if not TOKEN_PROVIDER_REFERENCE.match(reference):
                problems.append(f"sasl_oauth_token_provider {reference!r} is not module:callable")
            else:
                try:
                    if not callable(import_reference(reference)):
                        problems.append(f"sasl_oauth_token_provider {reference} is not callable")
                except ValueError as exc:
                    problems.append(f"sasl_oauth_token_provider: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class TopicSettings(Section):
    partitions: int = Field(default=8, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int = Field(default=1, ge=1)
    retention_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=60_000)


class SigningSettings(Section):
    """Keys that sign envelopes at the edge; every key here is accepted when verifying (rotation)."""

    active_key_id: str = "dev"
    keys: dict[str, Secret] = Field(default_factory=lambda: {"dev": SecretStr("breakwater-dev-signing-key")})

    @model_validator(mode="after")
    def _active_key_exists(self) -> SigningSettings:
        if self.active_key_id not in self.keys:
            raise ValueError(f"active_key_id {self.active_key_id!r} is not among keys {sorted(self.keys)}")
        return self


ENVELOPE_HEADROOM_BYTES = 64 * 1024
"""Room an envelope needs beside its base64 body: ids, times, the content type and the kept signature
headers (bounded by the HTTP server's header limits, far below this)."""


def envelope_bytes_for_body(body_bytes: int) -> int:
    """The largest envelope a body of ``body_bytes`` can become: base64 (4 bytes per 3) plus headroom."""
    return 4 * -(-body_bytes // 3) + ENVELOPE_HEADROOM_BYTES


class EdgeSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    instance: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    """Larger bodies get 413. Its envelope (base64 body plus headroom) must fit ``ENVELOPE_MAX_BYTES``."""
    produce_timeout_seconds: float = Field(default=5.0, gt=0)
    """How long a request waits for the broker's acknowledgement before it gets 503."""
    max_in_flight: int = Field(default=10_000, ge=1)
    """Envelopes waiting for acknowledgement at once; past this the edge answers 503 (bounded memory)."""
    retry_after_seconds: int = Field(default=5, ge=1)
    linger_ms: int = Field(default=2, ge=0)
    processes: int = Field(default=1, ge=1)
    """Edge processes sharing the port (``breakwater edge``). Python serves one core per process; in
    production prefer one process per container and more replicas, so each exports its own metrics."""
    keep_alive_seconds: int = Field(default=75, ge=1)
    """Idle keep-alive connections live this long: longer than a load balancer's or a provider's idle
    timeout, so the server never closes a connection the client is about to reuse."""
    max_header_bytes: int = Field(default=64 * 1024, ge=8 * 1024, le=16 * 1024 * 1024)
    """Request line and headers of one request, in bytes, before 431. httptools buffers a head of any
    size; real providers send a few KiB (PayPal's certificate URL and transmission headers, GitHub's
    hook headers stay under 4 KiB), proxies add some, and 64 KiB is above nginx's and Node's 8-16 KiB
    defaults, so nothing legitimate is refused while one connection can hold at most this much."""
    max_headers: int = Field(default=100, ge=10, le=10_000)
    """Header fields in one request before 431: providers send 10-30, 100 is Go's and h2's default."""
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """The request line and headers must arrive within this many seconds (from accept, or from a
    kept-alive request's first byte), else 408 and close: a client trickling a byte a second would
    otherwise hold a connection for ever. Providers send their head in one packet."""
    body_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    """The whole body must arrive within this many seconds of the headers, else 408 and close: at
    the default 1 MiB ``max_body_bytes`` that is 35 KB/s, far below any provider's link."""
    body_idle_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    """A body that stalls this long between chunks is dropped with 408 before the total deadline."""
    max_connections: int = Field(default=1000, ge=1, le=1_000_000)
    """Open connections per edge process; past this a new connection gets 503 with Retry-After and is
    closed, so established ones keep their file descriptors and the process never reaches its file
    limit. 1000 keep-alive connections is many times what one Python process serves at full rate."""

    @model_validator(mode="after")
    def _body_deadlines(self) -> EdgeSettings:
        if self.body_idle_timeout_seconds > self.body_timeout_seconds:
            raise ValueError(
                f"body_idle_timeout_seconds ({self.body_idle_timeout_seconds}) exceeds "
                f"body_timeout_seconds ({self.body_timeout_seconds})"
            )
        return self

    @field_validator("max_body_bytes")
    @classmethod
    def _body_fits_an_envelope(cls, value: int) -> int:
        envelope = envelope_bytes_for_body(value)
        if envelope > ENVELOPE_MAX_BYTES:
            largest = (ENVELOPE_MAX_BYTES - ENVELOPE_HEADROOM_BYTES) // 4 * 3
            raise ValueError(
                f"a body of {value} bytes becomes an envelope of up to {envelope} bytes, over the "
                f"{ENVELOPE_MAX_BYTES}-byte ENVELOPE_MAX_BYTES of webhooks.inbound (schemas/limits.py); "
                f"at most {largest}"
            )
        return value


class KafkaDestination(Section):
    """Deliver the normalized event record to a Kafka topic (inside the worker's transaction)."""

    kind: Literal["kafka"] = "kafka"
    topic: str = Field(default=EVENTS, pattern=r"^[A-Za-z0-9._-]{1,249}$")
    rate: RateLimit | None = None


STANDARD_SECRET_MIN_BYTES = 24
"""The Standard Webhooks spec's smallest key (192 bits); Breakwater's own secrets are new, so no less."""


def _decodes_as_standard_secret(secret: SecretStr) -> SecretStr:
    """Stricter than a provider's secret (whose prefix is optional): ``whsec_``, base64, 24+ bytes."""
    value = secret.get_secret_value()
    if not value.startswith(SECRET_PREFIX):
        raise ValueError(f"secret is not {SECRET_PREFIX} followed by base64")
    if len(decode_secret(value)) < STANDARD_SECRET_MIN_BYTES:  # the error names no value
        raise ValueError(f"secret is shorter than {STANDARD_SECRET_MIN_BYTES} bytes after {SECRET_PREFIX}")
    return secret


StandardSecret = Annotated[Secret, AfterValidator(_decodes_as_standard_secret)]
"""A secret reference whose value is a Standard Webhooks ``whsec_<base64>`` secret, checked at load."""


class HttpDestination(Section):
    """POST the raw body to ``url`` with ``Idempotency-Key: {provider}:{event_id}`` (at least once).

    With ``signing_secrets`` every delivery carries Standard Webhooks headers (``webhook-id``,
    ``webhook-timestamp``, ``webhook-signature``: one signature per secret), so the destination can
    tell Breakwater from anyone else with the official ``standardwebhooks`` libraries.

    ``breaker`` and ``rate_limit`` are the outbound client's own sections (``[apis.*]`` spells them the
    same), off unless configured::

        [pipeline.destinations.crm]
        kind = "http"
        url = "https://crm.example.com/hooks"
        signing_secrets = ["env:CRM_WEBHOOK_SECRET"]
        breaker = { failure_rate = 0.5, min_calls = 10, window = 30, open_for = 15 }
        rate_limit = { start = 50, min = 1, max = 50 }
    """

    renamed: ClassVar[Mapping[str, str]] = {
        "breaker_failure_rate": "breaker.failure_rate",
        "breaker_min_calls": "breaker.min_calls",
        "breaker_window_seconds": "breaker.window",
        "breaker_open_seconds": "breaker.open_for",
        "breaker_probes": "breaker.half_open_max_calls",
        "adaptive_max_rate": "rate_limit.start and rate_limit.max",
        "adaptive_min_rate": "rate_limit.min",
    }

    kind: Literal["http"] = "http"
    url: str = Field(pattern=r"^https?://")
    timeout_seconds: float = Field(default=10.0, gt=0)
    concurrency: int = Field(default=16, ge=1)
    """Requests in flight at once to this destination."""
    rate: RateLimit | None = None
    """A fixed pace (token bucket) that dispatch keeps before calling; ``rate_limit`` adapts to answers."""
    max_attempts: int | None = Field(default=None, ge=1)
    """Overrides ``pipeline.max_attempts`` for this destination."""
    max_inline_wait_seconds: float = Field(default=2.0, ge=0)
    """After a 429, records wait this long in line; a longer Retry-After parks them in a retry tier."""
    breaker: BreakerSettings = Field(default_factory=lambda: BreakerSettings(enabled=False))
    """Refuse calls (``circuit_open``) for ``open_for`` seconds once ``failure_rate`` of the calls in
    the last ``window`` seconds failed (5xx, timeouts, refused connections), so a down endpoint gets
    room to recover instead of every event's attempts. Off unless this section is given."""
    rate_limit: RateLimitSettings = Field(default_factory=lambda: RateLimitSettings(enabled=False))
    """Pace calls adaptively (halve on 429, 5xx and timeouts, creep back up on success) between ``min``
    and ``max`` a second, from ``start``. Off unless this section is given (``rate`` still applies)."""
    signing_secrets: tuple[StandardSecret, ...] = ()
    """Standard Webhooks secrets (``whsec_<base64>``, as references such as ``env:CRM_WEBHOOK_SECRET``).
    Every delivery is signed with each of them, so during a rotation the destination accepts the
    delivery with the old secret or the new one. Required in ``environment = "prod"``; elsewhere an
    unsigned destination is allowed and the worker warns about it at start."""
    forward_provider_signature: bool = False
    """Also send the provider's own signature headers, as the edge received them, so the destination
    can verify the provider too. A header whose name Breakwater sends itself (a Standard Webhooks
    provider's ``webhook-*``) is forwarded as ``x-provider-<name>``. A SendGrid batch is split into one
    delivery per event, which its batch signature does not cover, so those carry none."""


Destination = Annotated[KafkaDestination | HttpDestination, Field(discriminator="kind")]


class Route(Section):
    """Events of ``provider`` (``*`` for any) whose type matches one of ``event_types`` (fnmatch)."""

    provider: str = "*"
    event_types: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    destinations: list[str] = Field(min_length=1)


class RetryTier(Section):
    """A delay tier: failed deliveries wait in ``webhooks.retry.{name}`` for about ``delay_seconds``."""

    name: str = Field(pattern=r"^[a-z0-9]+$")
    delay_seconds: float = Field(gt=0)


def _default_tiers() -> list[RetryTier]:
    return [
        RetryTier(name="10s", delay_seconds=10),
        RetryTier(name="1m", delay_seconds=60),
        RetryTier(name="10m", delay_seconds=600),
        RetryTier(name="1h", delay_seconds=3600),
    ]


def _default_worker_id() -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:60] or "worker"


def _default_destinations() -> dict[str, Destination]:
    return {"events": KafkaDestination()}


class PipelineSettings(Section):
    """The stream workers: dedup window, routes and destinations, shaping, retry tiers, attempts."""

    app_id: str = Field(default=DEFAULT_APP_ID, pattern=r"^[A-Za-z0-9._-]{1,100}$")
    """Prefix of consumer groups, transactional ids and the dedup changelog."""
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]{0,100}$")
    """Prepended to every pipeline topic name; lets tests and tenants share one cluster."""
    worker_id: str = Field(default_factory=lambda: _default_worker_id(), pattern=r"^[A-Za-z0-9._-]{1,60}$")
    """Distinct per worker, stable across its restarts (default: the host name, as a StatefulSet pod
    keeps): a restarted worker with the same id fences its dead predecessor and aborts its transaction."""
    probe_host: str = "127.0.0.1"
    probe_port: int | None = Field(default=None, ge=1, le=65535)
    """Where the worker answers /healthz, /readyz and /metrics; none means no probe server."""
    state_dir: Path = Path(".breakwater/state")
    dedup_window_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    expiry_interval_seconds: float = Field(default=60.0, gt=0)
    dedup_memory_mb: int = Field(default=64, ge=8)
    """RocksDB memory of all of a worker's dedup partitions together (memtables and block cache, one
    budget): the table may hold millions of keys on disk, its memory stays within this. The OS page
    cache serves the files beyond it. Less memory means smaller memtables, more flushes and
    compactions, so a lower budget drains a backlog more slowly (``make bench-pipeline`` measures it)."""
    retry_tiers: list[RetryTier] = Field(default_factory=_default_tiers, min_length=1)
    retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    """``not_before`` is the tier delay times a random factor in ``[1 - jitter, 1 + jitter]``."""
    max_attempts: int = Field(default=8, ge=1)
    destinations: dict[str, Destination] = Field(default_factory=lambda: _default_destinations())
    routes: list[Route] = Field(default_factory=lambda: [Route(destinations=["events"])], min_length=1)
    provider_rates: dict[str, RateLimit] = Field(default_factory=dict)
    """Pacing per provider, across all its destinations; absent means unpaced."""
    batch_max_records: int = Field(default=5000, ge=1)
    dispatch_batch_seconds: float = Field(default=30.0, gt=0, le=240)
    """Time budget of one dispatch batch (pacing, slow endpoints); the rest waits for the next batch."""
    transaction_timeout_ms: int = Field(default=60_000, ge=1000)
    """A killed worker's open transaction blocks read_committed readers, and the next owner of its
    partitions (which starts only from settled offsets), this long unless its slot restarts."""
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    """How soon the group notices a dead worker and hands its partitions to the others."""

    @field_validator("retry_tiers")
    @classmethod
    def _tiers_ascending(cls, tiers: list[RetryTier]) -> list[RetryTier]:
        delays = [t.delay_seconds for t in tiers]
        if delays != sorted(delays) or len({t.name for t in tiers}) != len(tiers):
            raise ValueError("retry tiers need unique names and ascending delays")
        return tiers

    @model_validator(mode="after")
    def _routes_name_destinations(self) -> PipelineSettings:
        for index, route in enumerate(self.routes):
            unknown = [name for name in route.destinations if name not in self.destinations]
            if unknown:
                known = sorted(self.destinations)
                raise ValueError(f"routes[{index}] names unknown destination(s) {unknown}; known: {known}")
        return self


def _check_standard_secrets(name: str, secrets: list[SecretStr]) -> None:
    """Standard Webhooks keys are ``whsec_<base64>``: one that does not decode fails here, at load,
    not in the edge's first request (the edge decodes with the same function)."""
    for index, secret in enumerate(secrets):
        try:
            decode_secret(secret.get_secret_value())
        except ValueError as exc:
            raise ValueError(f"providers.{name}.secrets[{index}]: {exc}") from None


class BreakwaterSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    environment: Literal["dev", "test", "prod"] = "dev"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    signing: SigningSettings = Field(default_factory=SigningSettings)
    edge: EdgeSettings = Field(default_factory=EdgeSettings)
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    apis: dict[str, APISettings] = Field(default_factory=dict)
    """Third-party and internal APIs called through the outbound client (services/outbound)."""
    services: dict[str, ServiceSettings] = Field(default_factory=dict)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    operators: OperatorSettings = Field(default_factory=OperatorSettings)
    """Services with criticality, dependencies, SLA, health checks and fallbacks (services/reliability)."""

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, providers: dict[str, ProviderSettings]) -> dict[str, ProviderSettings]:
        for name, provider in providers.items():
            if not PROVIDER_NAME.match(name):
                raise ValueError(f"provider name {name!r} must match {PROVIDER_NAME.pattern}")
            kind = provider.kind or name
            if kind not in KINDS:
                raise ValueError(f"provider {name!r} needs kind, one of {', '.join(KINDS)}")
            if not provider.secrets and kind != "paypal":  # PayPal signs with certificates, not secrets
                raise ValueError(f"provider {name!r} has no secrets")
            if kind == "standard":
                _check_standard_secrets(name, provider.secrets)
            if kind == "paypal" and not provider.webhook_id:
                raise ValueError(f"provider {name!r} (paypal) needs webhook_id")
        return providers

    @field_validator("services")
    @classmethod
    def _services_graph(cls, services: dict[str, ServiceSettings]) -> dict[str, ServiceSettings]:
        validate_dependency_graph(services)  # cycles and unknown dependencies fail at start
        return services

    @model_validator(mode="after")
    def _services_apis_exist(self) -> BreakwaterSettings:
        for name, service in self.services.items():
            if service.api is not None and service.api not in self.apis:
                raise ValueError(f"services.{name}.api names {service.api!r}, which is not among apis")
        return self

    @model_validator(mode="after")
    def _prod_keys(self) -> BreakwaterSettings:
        if self.environment == "prod" and "dev" in self.signing.keys:
            raise ValueError("signing.keys must not hold the 'dev' key in prod")
        return self

    @model_validator(mode="after")
    def _prod_deliveries_signed(self) -> BreakwaterSettings:
        if self.environment != "prod":
            return self
        for name, destination in self.pipeline.destinations.items():
            if isinstance(destination, HttpDestination) and not destination.signing_secrets:
                raise ValueError(
                    f"pipeline.destinations.{name}.signing_secrets: an HTTP destination must be signed "
                    "in prod (a Standard Webhooks whsec_ secret), or anyone could post to it as Breakwater"
                )
        return self

    def provider_kind(self, name: str) -> ProviderKind:
        provider = self.providers[name]
        return provider.kind or name  # type: ignore[return-value]

    def dedup_mode(self, name: str) -> DedupMode:
        """What provider ``name``'s events are deduplicated on (its setting, else its kind's default)."""
        return self.providers[name].dedup or DEFAULT_DEDUP.get(self.provider_kind(name), "event_id")

    @cached_property
    def provider_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.providers))

    def topic_catalogue(self) -> list[TopicSpec]:
        return topic_catalogue(
            providers=self.provider_names,
            retry_tiers=[tier.name for tier in self.pipeline.retry_tiers],
            partitions=self.topics.partitions,
            replication_factor=self.topics.replication_factor,
            min_insync_replicas=self.topics.min_insync_replicas,
            retention_ms=self.topics.retention_ms,
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _CONFIG_FILE.get()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


# Carries the ``--config`` path into ``settings_customise_sources`` (a classmethod).
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("breakwater_config_file", default=None)


def _field_name(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(settings)"


def format_validation_error(exc: ValidationError) -> str:
    """One line per bad field: ``edge.port: Input should be less than or equal to 65535``."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        name, message = _field_name(error["loc"]), error["msg"]
        if error["type"] == "value_error":  # our validators' messages, without pydantic's preamble
            message = message.removeprefix("Value error, ")
            if message.startswith(f"{name}."):  # it names a field deeper than pydantic knows
                lines.append(message)
                continue
        lines.append(f"{name}: {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(config: Path | str | None = None, **overrides: Any) -> BreakwaterSettings:
    """Load and validate settings, raising :class:`ConfigError` that names every bad field.

    >>> settings = load_settings("deploy/local/breakwater.toml")  # doctest: +SKIP
    """
    path = config if config is not None else os.environ.get(CONFIG_ENV)
    config_path = Path(path).expanduser() if path else None
    if config_path is not None and not config_path.is_file():
        raise ConfigError(f"config file {config_path} does not exist")
    short_bootstrap = os.environ.get(SHORT_BOOTSTRAP_ENV)
    if short_bootstrap and not os.environ.get(BOOTSTRAP_ENV):  # as bootstrap_from_env: empty is unset
        kafka = dict(overrides.get("kafka", {}))
        kafka.setdefault("bootstrap", short_bootstrap)
        overrides["kafka"] = kafka
    token = _CONFIG_FILE.set(config_path)
    try:
        return BreakwaterSettings(**overrides)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    except tomllib.TOMLDecodeError as exc:  # the message ends "(at line L, column C)"
        raise ConfigError(f"invalid configuration:\n  {config_path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"invalid configuration:\n  {config_path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"invalid configuration:\n  {config_path}: {exc.strerror or exc}") from None
    except SettingsError as exc:  # an environment value that is not the JSON a list or map needs
        raise ConfigError(f"invalid configuration:\n  {exc}") from None
    finally:
        _CONFIG_FILE.reset(token)
