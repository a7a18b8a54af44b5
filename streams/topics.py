"""Pipeline topic names for one configuration, with ``pipeline.topic_prefix`` applied.

The prefix is empty in production (names equal :mod:`schemas.topics`); tests set one per test so many
pipelines share a broker without seeing each other's records.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from schemas import topics as names
from schemas.limits import RECORD_MAX_BYTES
from schemas.topics import TopicSpec
from services.config import BreakwaterSettings


@dataclass(frozen=True)
class PipelineTopics:
    prefix: str
    app_id: str

    @classmethod
    def of(cls, settings: BreakwaterSettings) -> PipelineTopics:
        return cls(prefix=settings.pipeline.topic_prefix, app_id=settings.pipeline.app_id)

    def name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    @property
    def inbound(self) -> str:
        return self.name(names.INBOUND)

    @property
    def quarantine(self) -> str:
        return self.name(names.QUARANTINE)

    @property
    def dlq(self) -> str:
        return self.name(names.DLQ)

    def ready(self, provider: str) -> str:
        return self.name(names.ready_topic(provider))

    def retry(self, tier: str) -> str:
        return self.name(names.retry_topic(tier))

    @property
    def dedup_changelog(self) -> str:
        """Compacted; partition ``p`` holds the dedup state of inbound partition ``p``."""
        return self.name(f"{self.app_id}.dedup.changelog")


def catalogue(settings: BreakwaterSettings) -> list[TopicSpec]:
    """The settings' topic catalogue with the prefix applied, plus the dedup changelog and route topics."""
    topics = PipelineTopics.of(settings)
    specs = [replace(spec, name=topics.name(spec.name)) for spec in settings.topic_catalogue()]
    inbound = next(spec for spec in specs if spec.name == topics.inbound)
    known = {spec.name for spec in specs}
    for destination in settings.pipeline.destinations.values():
        if destination.kind == "kafka" and topics.name(destination.topic) not in known:
            known.add(topics.name(destination.topic))
            specs.append(replace(inbound, name=topics.name(destination.topic), purpose="route topic"))
    changelog_configs = {
        "cleanup.policy": "compact",
        "min.insync.replicas": inbound.configs.get("min.insync.replicas", "1"),
        "max.message.bytes": str(RECORD_MAX_BYTES),
    }
    specs.append(
        TopicSpec(
            topics.dedup_changelog,
            inbound.partitions,
            inbound.replication_factor,
            changelog_configs,
            "dedup table changelog (compacted; expired keys are tombstoned)",
        )
    )
    return specs
