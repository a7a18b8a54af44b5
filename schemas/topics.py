"""The topic catalogue and the pipeline's Kafka names: topics, consumer groups, transactional ids.

Every topic Breakwater owns is declared once here with its partitions, configs and the record schema
it carries; ``breakwater topics ensure`` creates them and ``breakwater topics list`` shows them.
:class:`PipelineTopics` derives every name one pipeline uses from its ``topic_prefix`` and ``app_id``,
so the worker, the operator tools and the flood agree on them::

    topics = PipelineTopics(prefix="t1.", app_id="shop", providers=("stripe",))
    topics.ready("stripe")                 # "t1.webhooks.ready.stripe"
    topics.group(dispatch_role("stripe"))  # "shop-dispatch-stripe"

``streams.topics`` builds one from the settings and adds the dedup changelog and route topics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from schemas.limits import RECORD_MAX_BYTES

INBOUND = "webhooks.inbound"
EVENTS = "webhooks.events"
DLQ = "webhooks.dlq"
DLQ_STATE = "webhooks.dlq.state"
QUARANTINE = "webhooks.quarantine"
ALERTS = "ops.alerts"
DEFAULT_APP_ID = "breakwater"

# The record schemas: file stems under schemas/jsonschema/ (schemas.export writes them from the models).
ENVELOPE_SCHEMA = "webhook-envelope"
EVENT_RECORD_SCHEMA = "event-record"
DEAD_LETTER_SCHEMA = "dead-letter"
QUARANTINE_SCHEMA = "quarantine-record"
RETRY_SCHEMA = "retry-record"
UNPUBLISHED = "none"
"""How the record schema of a topic without a JSON Schema file begins: ``none (what it carries)``."""


def unpublished(what: str) -> str:
    """The record schema entry of a topic whose records have no published JSON Schema."""
    return f"{UNPUBLISHED} ({what})"


def ready_topic(provider: str) -> str:
    """After dedup each provider flows in its own topic, so it is paced on its own."""
    return f"webhooks.ready.{provider}"


def retry_topic(tier: str) -> str:
    return f"webhooks.retry.{tier}"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)
    purpose: str = ""
    record_schema: str = ""
    """A JSON Schema file stem (``*_SCHEMA`` above), or :func:`unpublished` text."""


def topic_catalogue(
    *,
    providers: Iterable[str],
    retry_tiers: Iterable[str],
    partitions: int,
    replication_factor: int,
    min_insync_replicas: int,
    retention_ms: int,
) -> list[TopicSpec]:
    """Every Breakwater topic for this configuration, in a stable order."""
    base = {
        "min.insync.replicas": str(min_insync_replicas),
        "retention.ms": str(retention_ms),
        "max.message.bytes": str(RECORD_MAX_BYTES),  # every record that embeds one envelope fits
    }
    # Dead letters and quarantined records wait for an operator: keep them a long time.
    long_lived = {**base, "retention.ms": str(max(retention_ms, 30 * 24 * 3600 * 1000))}

    def spec(
        name: str, purpose: str, schema: str, configs: Mapping[str, str] = base, parts: int = partitions
    ) -> TopicSpec:
        return TopicSpec(name, parts, replication_factor, dict(configs), purpose, schema)

    topics = [spec(INBOUND, "signed envelopes from the edge, key provider:event_id", ENVELOPE_SCHEMA)]
    topics += [
        spec(ready_topic(p), f"deduplicated {p} events awaiting dispatch", ENVELOPE_SCHEMA)
        for p in sorted(providers)
    ]
    topics += [spec(retry_topic(t), f"failed deliveries waiting {t}", RETRY_SCHEMA) for t in retry_tiers]
    topics += [
        spec(EVENTS, "clean, deduplicated events for downstream consumers", EVENT_RECORD_SCHEMA),
        spec(DLQ, "deliveries that cannot succeed, with their history", DEAD_LETTER_SCHEMA, long_lived),
        spec(
            DLQ_STATE,
            "replayed/discarded marks for dead letters",
            unpublished("DlqMark JSON"),
            {**long_lived, "cleanup.policy": "compact"},
        ),
        spec(QUARANTINE, "records that no trusted edge signed", QUARANTINE_SCHEMA, long_lived),
        spec(
            ALERTS,
            "service state changes from the reliability monitor",
            unpublished("Alert JSON"),
            parts=1,
        ),
    ]
    return topics


# The worker's loop roles; each names a consumer group and a transactional id (PipelineTopics.group).
DEDUP_ROLE = "dedup"


def dispatch_role(provider: str) -> str:
    return f"dispatch-{provider}"


def retry_role(tier: str) -> str:
    return f"retry-{tier}"


@dataclass(frozen=True)
class QueueGroup:
    """A pipeline consumer group and the topic it drains: one queue of this system."""

    group: str
    topic: str


@dataclass(frozen=True)
class PipelineTopics:
    """The Kafka names of one pipeline: topics with ``prefix`` applied, groups named from ``app_id``.

    The prefix is empty in production (names equal the constants above); tests set one per test so
    many pipelines share a broker without seeing each other's records.
    """

    prefix: str = ""
    app_id: str = DEFAULT_APP_ID
    providers: tuple[str, ...] = ()
    retry_tiers: tuple[str, ...] = ()

    def name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    @property
    def inbound(self) -> str:
        return self.name(INBOUND)

    @property
    def events(self) -> str:
        return self.name(EVENTS)

    @property
    def dlq(self) -> str:
        return self.name(DLQ)

    @property
    def dlq_state(self) -> str:
        return self.name(DLQ_STATE)

    @property
    def quarantine(self) -> str:
        return self.name(QUARANTINE)

    def ready(self, provider: str) -> str:
        return self.name(ready_topic(provider))

    def retry(self, tier: str) -> str:
        return self.name(retry_topic(tier))

    @property
    def dedup_changelog(self) -> str:
        """Compacted; partition ``p`` holds the dedup state of inbound partition ``p``."""
        return self.name(f"{self.app_id}.dedup.changelog")

    def group(self, role: str) -> str:
        """The consumer group of a worker loop: every worker of this ``app_id`` shares it."""
        return f"{self.app_id}-{role}"

    def transactional_id(self, role: str, worker_id: str) -> str:
        """One per loop and worker, stable across restarts, so a restart fences its zombie."""
        return f"{self.app_id}-{role}-{worker_id}"

    @property
    def replay_transactional_id(self) -> str:
        """The DLQ replay's producer: one at a time per pipeline."""
        return f"{self.app_id}-dlq-replay"

    def queues(self) -> list[QueueGroup]:
        """Every worker loop's group and the topic it reads."""
        groups = [QueueGroup(self.group(DEDUP_ROLE), self.inbound)]
        groups += [QueueGroup(self.group(dispatch_role(p)), self.ready(p)) for p in self.providers]
        groups += [QueueGroup(self.group(retry_role(t)), self.retry(t)) for t in self.retry_tiers]
        return groups
