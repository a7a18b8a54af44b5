"""10,000 webhooks, 30% duplicates (some immediate, some seconds later, some across a worker restart):
downstream, read with read_committed, holds exactly the unique events."""

from __future__ import annotations

import random
from typing import Any

import pytest

from schemas.events import EventRecord
from tests.support.pipeline import (
    CommittedReader,
    create_topics,
    envelope,
    produce,
    running_worker,
    settings_of,
)

pytestmark = pytest.mark.kafka


async def test_ten_thousand_with_duplicates_leave_exactly_the_unique_set(config: dict[str, Any]) -> None:
    settings = settings_of(config)
    topics = await create_topics(settings)
    rng = random.Random(7)
    first = [envelope(rng.choice(["stripe", "github"]), f"evt_a{i}") for i in range(5000)]
    later = [envelope(rng.choice(["stripe", "github"]), f"evt_b{i}") for i in range(2000)]
    unique_keys = {e.key.encode() for e in first + later}

    async with CommittedReader(settings.kafka.servers, topics.name("webhooks.events")) as events:
        # phase 1: 5,000 new and 1,000 immediate duplicates, interleaved
        batch = first + rng.sample(first, 1000)
        rng.shuffle(batch)
        await produce(settings, batch)
        async with running_worker(settings) as metrics:
            await events.until(lambda r: len(r.records) >= 5000, 60, "phase 1")
            # phase 2: 1,000 duplicates seconds after their originals
            await produce(settings, rng.sample(first, 1000))
            await events.until(lambda r: metrics["dedup.duplicate"] >= 2000, 60, "late duplicates")
        # phase 3, across a restart: 2,000 new and 1,000 duplicates of phase 1 and of phase 3
        batch = later + rng.sample(first, 500) + rng.sample(later, 500)
        rng.shuffle(batch)
        await produce(settings, batch)
        async with running_worker(settings) as metrics:
            await events.until(lambda r: len(r.records) >= 7000, 60, "phase 3")
            await events.settle()
        assert metrics["dedup.duplicate"] == 1000
        assert metrics["dedup.new"] == 2000

    keys = events.keys()
    assert len(keys) == 7000
    assert set(keys) == unique_keys
    assert {
        EventRecord.model_validate_json(r.value or b"").key.encode() for r in events.records
    } == unique_keys
    async with CommittedReader(settings.kafka.servers, topics.quarantine) as quarantine:
        await quarantine.settle(0.5)
    assert quarantine.records == []
