"""Workers killed with SIGKILL mid-run: downstream (read_committed) still holds exactly the unique set."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import pytest

from schemas.envelope import WebhookEnvelope
from tests.support.pipeline import (
    CommittedReader,
    WorkerProcess,
    create_topics,
    envelope,
    produce,
    settings_of,
)

pytestmark = [pytest.mark.kafka, pytest.mark.chaos]


def storm(rng: random.Random, unique: int, duplicates: int) -> tuple[list[WebhookEnvelope], set[bytes]]:
    """``unique`` events plus ``duplicates`` redeliveries (new envelope, same provider event id)."""
    originals = [(rng.choice(["stripe", "github"]), f"evt_{i}") for i in range(unique)]
    again = rng.choices(originals, k=duplicates)
    records = [envelope(p, e) for p, e in originals + again]
    # redeliveries come later than their originals, some soon and some much later
    records[unique:] = sorted(records[unique:], key=lambda _: rng.random())
    return records, {f"{p}:{e}".encode() for p, e in originals}


async def produce_in_waves(settings: Any, records: list[WebhookEnvelope], waves: int, pause: float) -> None:
    size = -(-len(records) // waves)
    for start in range(0, len(records), size):
        await produce(settings, records[start : start + size])
        await asyncio.sleep(pause)


async def test_kill_nine_at_random_moments_keeps_exactly_the_unique_set(
    config: dict[str, Any], tmp_path: Path
) -> None:
    rng = random.Random(20261129)
    settings = settings_of(config)
    topics = await create_topics(settings)
    records, unique_keys = storm(rng, unique=38_000, duplicates=12_000)
    worker = WorkerProcess(config, "w0", tmp_path / "worker.log")
    started = time.monotonic()
    kills: list[int] = []
    async with CommittedReader(settings.kafka.servers, topics.name("webhooks.events")) as events:
        producing = asyncio.create_task(produce_in_waves(settings, records, waves=5, pause=2.0))
        worker.start()
        try:
            while len(kills) < 6:
                # a random moment after the worker made progress again (so each kill lands mid-run)
                target = len(events.records) + rng.randint(500, 4000)

                def progressed(reader: CommittedReader, target: int = target) -> bool:
                    return len(reader.records) >= target

                await events.until(progressed, 90, "progress before a kill")
                await asyncio.sleep(rng.uniform(0, 0.5))
                worker.kill()
                kills.append(len(events.records))
                worker.start()
            await producing
            await events.until(lambda r: len(r.records) >= len(unique_keys), 120, "the unique set")
            await events.settle(3.0)
        finally:
            worker.stop()
            producing.cancel()
    elapsed = time.monotonic() - started

    keys = events.keys()
    assert len(kills) == 6 and all(0 < at < len(unique_keys) for at in kills), kills
    assert len(keys) == len(unique_keys), (
        f"{len(keys) - len(unique_keys)} extra records after kills at {kills}"
    )
    assert set(keys) == unique_keys
    ready = 0
    for provider in ("stripe", "github"):
        async with CommittedReader(settings.kafka.servers, topics.ready(provider)) as reader:
            await reader.settle(0.5)
        ready += len(reader.records)
    assert ready == len(unique_keys)  # dedup itself emitted each event once
    print(f"50,000 records, 6 kills at {kills}, {elapsed:.1f}s")


async def test_a_killed_worker_hands_its_partitions_to_the_other(
    config: dict[str, Any], tmp_path: Path
) -> None:
    rng = random.Random(5)
    settings = settings_of(config)
    topics = await create_topics(settings)
    records, unique_keys = storm(rng, unique=16_000, duplicates=4_000)
    first = WorkerProcess(config, "w1", tmp_path / "w1.log")
    second = WorkerProcess(config, "w2", tmp_path / "w2.log")
    async with CommittedReader(settings.kafka.servers, topics.name("webhooks.events")) as events:
        producing = asyncio.create_task(produce_in_waves(settings, records, waves=4, pause=1.5))
        first.start()
        second.start()
        try:
            await events.until(lambda r: len(r.records) >= 5000, 90, "both workers running")
            first.kill()
            at_kill = len(events.records)
            await producing
            await events.until(lambda r: len(r.records) >= len(unique_keys), 120, "the unique set")
            await events.settle(2.0)
            assert second.alive()
        finally:
            second.stop()
            producing.cancel()
    assert at_kill < len(unique_keys)
    keys = events.keys()
    assert len(keys) == len(unique_keys)
    assert set(keys) == unique_keys
    async with CommittedReader(settings.kafka.servers, topics.quarantine) as quarantine:
        await quarantine.settle(0.5)
    async with CommittedReader(settings.kafka.servers, topics.dlq) as dlq:
        await dlq.settle(0.5)
    assert quarantine.records == [] and dlq.records == []
