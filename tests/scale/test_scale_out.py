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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.topics import PipelineTopics
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


async def delivered_exactly_once(storm: Storm, events: CommittedReader) -> None:
    await events.until(lambda r: set(r.keys()) >= {k.encode() for k in storm.accepted}, 180, "every 202")
    await events.settle(3.0)
    keys = Counter(events.keys())
    doubled = [k for k, n in keys.items() if n > 1]
    assert not doubled, f"{len(doubled)} events delivered twice, e.g. {doubled[:3]}"
    missing = {k.encode() for k in storm.accepted} - set(keys)
    assert not missing, f"{len(missing)} accepted webhooks lost"
    assert set(keys) <= {k.encode() for k in storm.sent}


@dataclass
class StormRun:
    storm: Storm
    events: CommittedReader
    workers: list[WorkerProcess]
    topics: PipelineTopics
    flood: asyncio.Task[None]

    async def until_delivered(self, count: int) -> None:
        await self.events.until(lambda r: len(r.records) >= count, 120, f"{count} deliveries")


@contextlib.asynccontextmanager
async def storm_through(
    cluster: LocalCluster, name: str, state: Path, *, workers: int, seed: int
) -> AsyncIterator[StormRun]:
    """Two edges and ``workers`` worker processes on ``cluster``, with a 4,000-webhook storm under way."""
    config = scale_config(cluster.bootstrap, name, state)
    topics = await create_topics(settings_of(config))
    processes = [WorkerProcess(config, f"w{i}", state.parent / f"w{i}.log") for i in range(workers)]
    async with (
        edges(cluster.bootstrap, topics.inbound, 2) as urls,
        CommittedReader(cluster.bootstrap, topics.name("webhooks.events")) as events,
    ):
        for process in processes:
            process.start()
        storm = Storm(urls, total=4000, seed=seed)
        flood = asyncio.create_task(storm.run())
        try:
            yield StormRun(storm, events, processes, topics, flood)
        finally:
            flood.cancel()
            for process in processes:
                process.stop()


async def test_a_broker_stopped_mid_storm_loses_and_doubles_nothing(
    kafka_cluster: LocalCluster, state: Path, unique: Callable[[str], str]
) -> None:
    try:
        async with storm_through(kafka_cluster, unique("scale-broker"), state, workers=2, seed=1) as run:
            await run.until_delivered(800)
            await asyncio.to_thread(kafka_cluster.nodes[1].stop)
            await run.flood
            await delivered_exactly_once(run.storm, run.events)
    finally:
        await asyncio.to_thread(kafka_cluster.start)  # bring the node back for the next test
    assert run.storm.statuses[202] >= len(run.storm.accepted) > 3000 * 0.8


async def test_a_worker_killed_mid_storm_hands_over_and_counts_add_up(
    kafka_cluster: LocalCluster, state: Path, unique: Callable[[str], str]
) -> None:
    async with storm_through(kafka_cluster, unique("scale-worker"), state, workers=3, seed=2) as run:
        await run.until_delivered(1000)
        run.workers[0].kill()
        await run.flood
        await delivered_exactly_once(run.storm, run.events)
        assert run.workers[1].alive() and run.workers[2].alive()
    async with CommittedReader(kafka_cluster.bootstrap, run.topics.quarantine) as quarantine:
        await quarantine.settle(0.5)
    assert quarantine.records == []
