"""Helpers for the stream tests: committed reads, raw records on the inbound topic, in-process workers.

Configs, envelopes, topics, the signed producer and worker subprocesses live in
:mod:`benchmarks.harness`, shared with the pipeline benchmark; they are re-exported here, so a test
imports every pipeline helper from one place. Workers run in process (:func:`running_worker`) or as
subprocesses (:class:`WorkerProcess`, for ``kill -9``); both take the same plain config dict.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from benchmarks.harness import (
    FAST_TIERS,
    PROVIDERS,
    REPO,
    WorkerProcess,
    create_topics,
    envelope,
    pipeline_config,
    produce,
    settings_of,
)
from services.config import BreakwaterSettings
from streams.metrics import Metrics
from streams.topics import pipeline_topics
from streams.worker import serve

__all__ = [
    "FAST_TIERS",
    "PROVIDERS",
    "REPO",
    "CommittedReader",
    "WorkerProcess",
    "create_topics",
    "envelope",
    "pipeline_config",
    "produce",
    "produce_raw",
    "running_worker",
    "settings_of",
]


async def produce_raw(
    settings: BreakwaterSettings, records: Iterable[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.servers, acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(pipeline_topics(settings).inbound, value, key=key, headers=headers)
    finally:
        await producer.stop()


class CommittedReader:
    """Reads a topic from the beginning with ``read_committed`` and keeps every record."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.records: list[ConsumerRecord[bytes, bytes]] = []
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
        )

    async def __aenter__(self) -> CommittedReader:
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(self.topic) or set()
        if not partitions:
            await self._consumer._client.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def poll(self) -> None:
        batches = await self._consumer.getmany(timeout_ms=200, max_records=10_000)
        for records in batches.values():
            self.records.extend(records)

    async def until(self, done: Callable[[CommittedReader], bool], timeout: float, what: str = "") -> None:
        """Poll until ``done(self)``; fail with the current count after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not done(self):
            if time.monotonic() > deadline:
                count = len(self.records)
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what} on {self.topic}: {count} records"
                )
            await self.poll()

    async def settle(self, quiet: float = 1.5) -> None:
        """Read until nothing new arrives for ``quiet`` seconds (to catch late extra records)."""
        last, since = len(self.records), time.monotonic()
        while time.monotonic() - since < quiet:
            await self.poll()
            if len(self.records) != last:
                last, since = len(self.records), time.monotonic()

    def keys(self) -> list[bytes]:
        return [r.key or b"" for r in self.records]


@contextlib.asynccontextmanager
async def running_worker(settings: BreakwaterSettings) -> AsyncIterator[Metrics]:
    """A worker in this process, stopped gracefully on exit; yields its live metrics."""
    stop = asyncio.Event()
    metrics = Metrics()
    task = asyncio.create_task(serve(settings, stop, metrics))
    try:
        yield metrics
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
