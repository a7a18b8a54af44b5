"""The pipeline's Kafka names and topic catalogue for one configuration, with ``pipeline.topic_prefix``.

The names themselves are derived in :mod:`schemas.topics`; this module only reads them off the settings.
"""

from __future__ import annotations

from dataclasses import replace

from schemas.limits import RECORD_MAX_BYTES
from schemas.topics import EVENT_RECORD_SCHEMA, PipelineTopics, TopicSpec, unpublished
from services.config import BreakwaterSettings


def pipeline_topics(settings: BreakwaterSettings) -> PipelineTopics:
    """Every topic, group and transactional id name of the configured pipeline."""
    pipeline = settings.pipeline
    return PipelineTopics(
        prefix=pipeline.topic_prefix,
        app_id=pipeline.app_id,
        providers=settings.provider_names,
        retry_tiers=tuple(tier.name for tier in pipeline.retry_tiers),
    )


def catalogue(settings: BreakwaterSettings) -> list[TopicSpec]:
    """The settings' topic catalogue with the prefix applied, plus the dedup changelog and route topics."""
    topics = pipeline_topics(settings)
    specs = [replace(spec, name=topics.name(spec.name)) for spec in settings.topic_catalogue()]
    inbound = next(spec for spec in specs if spec.name == topics.inbound)
    known = {spec.name for spec in specs}
    for destination in settings.pipeline.destinations.values():
        if destination.kind == "kafka" and topics.name(destination.topic) not in known:
            known.add(topics.name(destination.topic))
            specs.append(
                replace(
                    inbound,
                    name=topics.name(destination.topic),
                    purpose="route topic",
                    record_schema=EVENT_RECORD_SCHEMA,
                )
            )
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
            unpublished("binary dedup state"),
        )
    )
    return specs
