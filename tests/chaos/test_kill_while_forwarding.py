"""kill -9 while dedup forwards records to the partitions that own them (issue #13): exactly once holds.

A librdkafka producer (CRC32 partitioner) puts about three records in four on a partition that does
not own their dedup identity, and a GitHub body's digest rarely maps where its key does: most records
cross ``webhooks.inbound`` twice, the forward and the offsets of its source in one transaction.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from schemas.envelope import WebhookEnvelope
from schemas.headers import FORWARDED_FROM_HEADER
from schemas.producer import encode_envelope
from schemas.signing import EnvelopeSigner
from schemas.topics import DEDUP_ROLE, QueueGroup
from services.config import BreakwaterSettings, DedupMode
from services.kafka.partitioner import default_partition
from services.operators.stats import consumer_lag
from streams.dedup_store import dedup_identity
from streams.topics import pipeline_topics
from tests.support.librdkafka import librdkafka_produce
from tests.support.pipeline import CommittedReader, WorkerProcess, create_topics, envelope, settings_of

pytestmark = [pytest.mark.kafka, pytest.mark.chaos]
PARTITIONS = 4


def identity_of(item: WebhookEnvelope) -> bytes:
    mode: DedupMode = "body" if item.provider == "github" else "event_id"
    return dedup_identity(mode, item.key.encode(), item.provider, item.body)


def forwards_due(produced: list[tuple[bytes, bytes, list[tuple[str, bytes]]]], landed: list[int]) -> int:
    """How many of ``produced`` landed off the partition that owns their dedup identity."""
    return sum(
        1
        for (_, value, _), partition in zip(produced, landed, strict=True)
        if partition != default_partition(identity_of(WebhookEnvelope.model_validate_json(value)), PARTITIONS)
    )


async def dedup_drained(settings: BreakwaterSettings, inbound: str, total: int, timeout: float = 180) -> None:
    """Wait until ``inbound`` holds ``total`` committed records and dedup's group has committed past them."""
    queue = QueueGroup(group=pipeline_topics(settings).group(DEDUP_ROLE), topic=inbound)
    deadline = time.monotonic() + timeout
    async with CommittedReader(settings.kafka.servers, inbound) as reader:
        while True:
            await reader.poll()
            backlog = sum(lag.lag for lag in await consumer_lag(settings.kafka.servers, [queue]))
            if len(reader.records) >= total and backlog == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"inbound {len(reader.records)}/{total} records, dedup lag {backlog}")
            await asyncio.sleep(0.5)  # the group's committed offset is a broker-side figure: poll it


async def test_kill_nine_mid_forwarding_keeps_exactly_one_delivery_per_identity(
    config: dict[str, Any], tmp_path: Path
) -> None:
    rng = random.Random(1313)
    settings = settings_of(config)
    topics = await create_topics(settings)
    signer = EnvelopeSigner.of(settings.signing)
    originals = [envelope("stripe", f"evt_{i}") for i in range(6000)]
    originals += [
        envelope("github", f"d-{i}", "issues.opened", body={"action": "opened", "issue": {"number": i}})
        for i in range(6000)
    ]
    resends = rng.sample(originals, 2000)  # the same signed record again
    replays = [  # a GitHub body re-posted under a fresh delivery id
        item.model_copy(update={"event_id": f"{item.event_id}-replay"})
        for item in rng.sample(originals[6000:], 1000)
    ]
    records = [encode_envelope(item, signer) for item in originals]
    later = [encode_envelope(item, signer) for item in resends + replays]
    rng.shuffle(later)
    expected = {identity_of(item) for item in originals}

    async def gateway(chunk: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> list[int]:
        return await asyncio.to_thread(librdkafka_produce, settings.kafka.servers, topics.inbound, chunk)

    worker = WorkerProcess(config, "w0", tmp_path / "worker.log")
    kills: list[int] = []
    landed: list[int] = []
    async with CommittedReader(settings.kafka.servers, topics.name("webhooks.events")) as events:
        worker.start()
        try:
            # one kill per wave of 3,000, once part of the wave is delivered: the rest of it and every
            # later wave are still to come, however fast the machine (a schedule of absolute counts
            # was overtaken on an idle machine, where the worker finished before the later kills)
            for start in range(0, len(records), 3000):
                delivered = len(events.records)
                landed.extend(await gateway(records[start : start + 3000]))
                target = delivered + rng.randint(100, 1500)

                def progressed(reader: CommittedReader, target: int = target) -> bool:
                    return len(reader.records) >= target

                await events.until(progressed, 120, "progress before a kill")
                await asyncio.sleep(rng.uniform(0, 0.3))
                worker.kill()
                kills.append(len(events.records))
                worker.start()
            landed.extend(await gateway(later))
            await events.until(lambda r: len(r.records) >= len(expected), 180, "every event")
            # The worker runs until it has forwarded and judged every record, resends included:
            # stopping it once the events were complete cut off the later records on a slow machine.
            should_forward = forwards_due(records + later, landed)
            await dedup_drained(settings, topics.inbound, len(records + later) + should_forward)
            await events.settle(3.0)
        finally:
            worker.stop()

    assert sum(0 < at < len(expected) for at in kills) >= 3, kills  # (counted as the reader caught up)
    keys = Counter(events.keys())
    assert [key for key, n in keys.items() if n > 1] == [], f"delivered twice after kills at {kills}"
    assert len(keys) == len(expected)
    ready: list[WebhookEnvelope] = []
    for provider in ("stripe", "github"):
        async with CommittedReader(settings.kafka.servers, topics.ready(provider)) as reader:
            await reader.settle(1.0)
        ready += [WebhookEnvelope.model_validate_json(r.value or b"") for r in reader.records]
    judged = Counter(identity_of(item) for item in ready)
    assert set(judged) == expected and max(judged.values()) == 1  # each identity once, none lost
    # every record produced off its owner's partition was forwarded exactly once, kills or not
    produced = records + later
    async with CommittedReader(settings.kafka.servers, topics.inbound) as inbound:
        await inbound.until(lambda r: len(r.records) >= len(produced) + should_forward, 60, "inbound")
        await inbound.settle(1.0)
    forwarded = [r for r in inbound.records if FORWARDED_FROM_HEADER in dict(r.headers)]
    assert len(forwarded) == should_forward
    print(f"{len(produced)} records in, {len(expected)} out, {should_forward} forwarded, kills at {kills}")
