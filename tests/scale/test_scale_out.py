"""A storm through two edges into three brokers and several workers, with a broker or a worker lost.

Every 202 the edges gave must come out of the pipeline exactly once (read_committed); a 503 is allowed
while leadership moves, and the provider's retry of it (posted again here) is a duplicate that dedup
drops. Counts are checked against what was sent, not against the pipeline's own metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.cli.sample import signed_sample
from services.kafka.local import LocalCluster
from tests.support.edge import SECRETS, SIGNING_KEY, edge_settings, running_edge
from tests.support.pipeline import CommittedReader, WorkerProcess, create_topics, pipeline_config, settings_of

pytestmark = [pytest.mark.kafka, pytest.mark.scale]
PROVIDERS = ("stripe", "github")


def scale_config(bootstrap: str, name: str, state: Path) -> dict[str, Any]:
    config = pipeline_config(bootstrap, name, state)
    config["providers"] = {p: {"secrets": [SECRETS[p]]} for p in PROVIDERS}
    config["signing"] = {"active_key_id": "t1", "keys": {"t1": SIGNING_KEY.decode()}}
    config["topics"] = {"partitions": 6, "replication_factor": 3, "min_insync_replicas": 2}
    return config


class Storm:
    """Posts signed webhooks (20% provider resends) round-robin to the edges, answering resends of 503s."""

    def __init__(self, urls: Sequence[str], total: int, seed: int) -> None:
        self.urls = itertools.cycle(urls)
        self.rng = random.Random(seed)
        self.total = total
        self.accepted: set[str] = set()
        self.sent: set[str] = set()
        self.originals: list[tuple[str, str]] = []
        self.statuses: Counter[int] = Counter()
        self.posted = 0

    def next_event(self) -> tuple[str, str]:
        if self.originals and self.rng.random() < 0.2:
            return self.rng.choice(self.originals)
        event = (self.rng.choice(PROVIDERS), f"evt_{self.posted}")
        self.originals.append(event)
        return event

    async def run(self, concurrency: int = 16) -> None:
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        async with httpx.AsyncClient(timeout=30) as client:

            async def post() -> None:
                while self.posted < self.total or not queue.empty():
                    if not queue.empty():
                        provider, event_id = queue.get_nowait()  # a provider retrying after a 503
                    else:
                        provider, event_id = self.next_event()
                        self.posted += 1
                    body, headers = signed_sample(provider, SECRETS[provider], event_id=event_id)
                    response = await client.post(
                        f"{next(self.urls)}/webhooks/{provider}", content=body, headers=headers
                    )
                    self.statuses[response.status_code] += 1
                    key = f"{provider}:{event_id}"
                    self.sent.add(key)
                    if response.status_code == 202:
                        self.accepted.add(key)
                    elif response.status_code == 503:
                        queue.put_nowait((provider, event_id))
                    else:
                        raise AssertionError(f"unexpected {response.status_code}: {response.text}")

            await asyncio.gather(*(post() for _ in range(concurrency)))


@contextlib.asynccontextmanager
async def edges(bootstrap: str, inbound: str, count: int) -> AsyncIterator[list[str]]:
    async with contextlib.AsyncExitStack() as stack:
        urls = []
        for _ in range(count):
            settings = edge_settings(bootstrap, providers={p: {"secrets": [SECRETS[p]]} for p in PROVIDERS})
            urls.append((await stack.enter_async_context(running_edge(settings, inbound))).url)
        yield urls


async def delivered_exactly_once(config: dict[str, Any], storm: Storm, events: CommittedReader) -> None:
    await events.until(lambda r: set(r.keys()) >= {k.encode() for k in storm.accepted}, 180, "every 202")
    await events.settle(3.0)
    keys = Counter(events.keys())
    doubled = [k for k, n in keys.items() if n > 1]
    assert not doubled, f"{len(doubled)} events delivered twice, e.g. {doubled[:3]}"
    missing = {k.encode() for k in storm.accepted} - set(keys)
    assert not missing, f"{len(missing)} accepted webhooks lost"
    assert set(keys) <= {k.encode() for k in storm.sent}


async def wait_for(reader: CommittedReader, count: int) -> None:
    await reader.until(lambda r: len(r.records) >= count, 120, f"{count} deliveries")


async def test_a_broker_stopped_mid_storm_loses_and_doubles_nothing(
    kafka_cluster: LocalCluster, state: Path, unique: Callable[[str], str]
) -> None:
    config = scale_config(kafka_cluster.bootstrap, unique("scale-broker"), state)
    settings = settings_of(config)
    topics = await create_topics(settings)
    workers = [WorkerProcess(config, f"w{i}", state.parent / f"w{i}.log") for i in range(2)]
    storm = Storm([], total=4000, seed=1)
    victim = kafka_cluster.nodes[1]
    async with (
        edges(kafka_cluster.bootstrap, topics.inbound, 2) as urls,
        CommittedReader(kafka_cluster.bootstrap, topics.name("webhooks.events")) as events,
    ):
        storm.urls = itertools.cycle(urls)
        for worker in workers:
            worker.start()
        try:
            flood = asyncio.create_task(storm.run())
            await wait_for(events, 800)
            await asyncio.to_thread(victim.stop)
            await flood
            await delivered_exactly_once(config, storm, events)
        finally:
            for worker in workers:
                worker.stop()
            await asyncio.to_thread(kafka_cluster.start)  # bring the node back for the next test
    assert storm.statuses[202] >= len(storm.accepted) > 3000 * 0.8


async def test_a_worker_killed_mid_storm_hands_over_and_counts_add_up(
    kafka_cluster: LocalCluster, state: Path, unique: Callable[[str], str]
) -> None:
    config = scale_config(kafka_cluster.bootstrap, unique("scale-worker"), state)
    settings = settings_of(config)
    topics = await create_topics(settings)
    workers = [WorkerProcess(config, f"w{i}", state.parent / f"w{i}.log") for i in range(3)]
    storm = Storm([], total=4000, seed=2)
    async with (
        edges(kafka_cluster.bootstrap, topics.inbound, 2) as urls,
        CommittedReader(kafka_cluster.bootstrap, topics.name("webhooks.events")) as events,
    ):
        storm.urls = itertools.cycle(urls)
        for worker in workers:
            worker.start()
        try:
            flood = asyncio.create_task(storm.run())
            await wait_for(events, 1000)
            workers[0].kill()
            await flood
            await delivered_exactly_once(config, storm, events)
            assert workers[1].alive() and workers[2].alive()
        finally:
            for worker in workers:
                worker.stop()
    async with CommittedReader(kafka_cluster.bootstrap, topics.quarantine) as quarantine:
        await quarantine.settle(0.5)
    assert quarantine.records == []
