"""One test's operator world on the run's broker: its own topics (prefix), and known dead letters.

The corpus mixes providers, error classes, destinations, event types and times, so every filter has
records to keep and records to drop.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from schemas.deadletter import DeadLetter
from services.config import BreakwaterSettings, load_settings
from services.kafka.admin import ensure_topics
from services.operators.reader import Snapshot, read_snapshot
from services.operators.service import Operators
from streams.topics import pipeline_topics
from tests.unit.operators.deadletters import BASE, dead_letter

PROVIDERS = {"stripe": {"secrets": ["whsec_test"]}, "github": {"secrets": ["gh-test"]}}
TOKEN = "operator-token-for-tests-0123456789"


def corpus() -> list[DeadLetter]:
    """14 dead letters: stripe 10 (6 http_500 to sink at hours 0..5, ...), github 4."""
    dead = [dead_letter("stripe", n, hours=n, attempts=3) for n in range(6)]
    dead += [dead_letter("stripe", 10 + n, error_class="http_400", hours=1 + n) for n in range(2)]
    dead += [
        dead_letter("stripe", 20 + n, error_class="timeout", destination="events", hours=2 + n)
        for n in range(2)
    ]
    dead += [dead_letter("github", n, hours=1 + n, attempts=2) for n in range(3)]
    dead += [
        dead_letter("github", 9, error_class="http_400", destination="other", event_type="push", hours=4)
    ]
    return dead


@dataclass(frozen=True)
class Seeded:
    settings: BreakwaterSettings
    ops: Operators
    dead: list[DeadLetter]

    def hours(self, h: float) -> str:
        return (BASE + timedelta(hours=h)).isoformat()

    async def read(self, topic: str) -> Snapshot:
        return await read_snapshot(self.settings.kafka.servers, topic)


async def seed(bootstrap: str, name: str, dead: list[DeadLetter] | None = None, **pipeline: Any) -> Seeded:
    """Create the prefixed catalogue (2 partitions each) and put ``dead`` (default: the corpus) on the DLQ.

    ``pipeline`` overrides settings of the pipeline section (destinations, routes, state_dir...).
    """
    settings = load_settings(
        environment="test",
        kafka={"bootstrap": bootstrap},
        topics={"partitions": 2},
        providers=PROVIDERS,
        pipeline={
            "app_id": name,
            "topic_prefix": f"{name}.",
            "retry_tiers": [{"name": "t1", "delay_seconds": 1}],
            **pipeline,
        },
    )
    topics = pipeline_topics(settings)
    await ensure_topics(bootstrap, [replace(s, name=topics.name(s.name)) for s in settings.topic_catalogue()])
    ops = Operators.of(settings)
    dead = corpus() if dead is None else dead
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for item in dead:
            await producer.send(
                ops.topics.dlq, item.model_dump_json().encode(), key=item.envelope.key.encode()
            )
        await producer.flush()
    finally:
        await producer.stop()
    return Seeded(settings, ops, dead)
