"""The topic names and consumer groups the operator tools read, with the pipeline's prefix applied.

Names are plain fields so tests (and tenants) can point the tools at their own topics.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas import topics as names
from services.config import BreakwaterSettings

__all__ = ["OperatorTopics", "QueueGroup"]


@dataclass(frozen=True)
class QueueGroup:
    """A pipeline consumer group and the topic it drains: one queue of this system."""

    group: str
    topic: str


@dataclass(frozen=True)
class OperatorTopics:
    prefix: str = ""
    app_id: str = "breakwater"
    providers: tuple[str, ...] = ()
    retry_tiers: tuple[str, ...] = ()

    @classmethod
    def of(cls, settings: BreakwaterSettings) -> OperatorTopics:
        pipeline = settings.pipeline
        return cls(
            prefix=pipeline.topic_prefix,
            app_id=pipeline.app_id,
            providers=settings.provider_names,
            retry_tiers=tuple(tier.name for tier in pipeline.retry_tiers),
        )

    def name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    @property
    def dlq(self) -> str:
        return self.name(names.DLQ)

    @property
    def dlq_state(self) -> str:
        return self.name(names.DLQ_STATE)

    @property
    def quarantine(self) -> str:
        return self.name(names.QUARANTINE)

    def ready(self, provider: str) -> str:
        return self.name(names.ready_topic(provider))

    def queues(self) -> list[QueueGroup]:
        """The groups of :mod:`streams.worker` (``{app_id}-{role}``) and the topic each reads."""
        app = self.app_id
        groups = [QueueGroup(f"{app}-dedup", self.name(names.INBOUND))]
        groups += [QueueGroup(f"{app}-dispatch-{p}", self.ready(p)) for p in self.providers]
        groups += [QueueGroup(f"{app}-retry-{t}", self.name(names.retry_topic(t))) for t in self.retry_tiers]
        return groups
