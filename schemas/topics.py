"""The topic catalogue: every topic Breakwater owns, declared once with its partitions and configs.

``breakwater topics ensure`` creates these; the edge, the workers and the tests take names from here.
The dedup changelog and route topics are added per configuration by ``streams.topics.catalogue``.
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
        name: str, purpose: str, configs: Mapping[str, str] = base, parts: int = partitions
    ) -> TopicSpec:
        return TopicSpec(name, parts, replication_factor, dict(configs), purpose)

    topics = [spec(INBOUND, "signed envelopes from the edge, key provider:event_id")]
    topics += [spec(ready_topic(p), f"deduplicated {p} events awaiting dispatch") for p in sorted(providers)]
    topics += [spec(retry_topic(t), f"failed deliveries waiting {t}") for t in retry_tiers]
    topics += [
        spec(EVENTS, "clean, deduplicated events for downstream consumers"),
        spec(DLQ, "deliveries that cannot succeed, with their history", long_lived),
        spec(
            DLQ_STATE,
            "replayed/discarded marks for dead letters",
            {**long_lived, "cleanup.policy": "compact"},
        ),
        spec(QUARANTINE, "records that no trusted edge signed", long_lived),
        spec(ALERTS, "service state changes from the reliability monitor", parts=1),
    ]
    return topics
