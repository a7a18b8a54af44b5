"""Helpers for the stream tests: configs, envelopes on the inbound topic, committed reads, workers.

Every test gets its own ``topic_prefix`` and ``app_id``, so pipelines share the run's broker without
seeing each other. Workers run in process (:func:`running_worker`) or as subprocesses
(:class:`WorkerProcess`, for ``kill -9``); both take the same plain config dict.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from schemas.envelope import WebhookEnvelope
from schemas.producer import encode_envelope
from schemas.signing import EnvelopeSigner
from schemas.topics import PipelineTopics
from services.config import BreakwaterSettings, load_settings
from services.kafka.admin import ensure_topics
from streams.metrics import Metrics
from streams.topics import catalogue, pipeline_topics
from streams.worker import serve

REPO = Path(__file__).resolve().parents[2]
PROVIDERS = {"stripe": {"secrets": ["whsec_test"]}, "github": {"secrets": ["gh-test"]}}
FAST_TIERS = [{"name": "t1", "delay_seconds": 0.3}, {"name": "t2", "delay_seconds": 0.6}]


def pipeline_config(bootstrap: str, name: str, state: Path, **pipeline: Any) -> dict[str, Any]:
    """A plain config dict (JSON-able) for one test's pipeline; ``pipeline`` overrides its section."""
    section: dict[str, Any] = {
        "app_id": name,
        "topic_prefix": f"{name}.",
        "state_dir": str(state),
        "retry_tiers": FAST_TIERS,
        "retry_jitter": 0.1,
        "transaction_timeout_ms": 10_000,
        "session_timeout_ms": 6_000,
    }
    section.update(pipeline)
    return {
        "environment": "test",
        "kafka": {"bootstrap": bootstrap},
        "topics": {"partitions": 4},
        "providers": PROVIDERS,
        "pipeline": section,
    }


def settings_of(config: dict[str, Any], **pipeline: Any) -> BreakwaterSettings:
    if pipeline:
        config = {**config, "pipeline": {**config["pipeline"], **pipeline}}
    return load_settings(**config)


def envelope(
    provider: str, event_id: str, event_type: str = "charge.succeeded", body: Any = None
) -> WebhookEnvelope:
    payload = json.dumps(body if body is not None else {"id": event_id, "type": event_type}).encode()
    return WebhookEnvelope(
        provider=provider,
        provider_kind=provider,
        event_id=event_id,
        event_type=event_type,
        received_at=datetime.now(UTC),
        body=payload,
        content_type="application/json",
        edge_instance="test",
    )


async def create_topics(settings: BreakwaterSettings) -> PipelineTopics:
    await ensure_topics(settings.kafka.servers, catalogue(settings))
    return pipeline_topics(settings)


async def produce(settings: BreakwaterSettings, envelopes: Iterable[WebhookEnvelope]) -> int:
    """Put signed envelopes on the pipeline's inbound topic (as the edge would); returns the count."""
    topics = pipeline_topics(settings)
    signer = EnvelopeSigner.of(settings.signing)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.servers, acks="all", enable_idempotence=True, linger_ms=20
    )
    await producer.start()
    sent = 0
    try:
        pending = []
        for item in envelopes:
            key, value, headers = encode_envelope(item, signer)
            pending.append(await producer.send(topics.inbound, value, key=key, headers=headers))
            sent += 1
        await producer.flush()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


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


class WorkerProcess:
    """``python -m streams.worker`` in a subprocess, configured by environment variables."""

    def __init__(self, config: dict[str, Any], worker_id: str, log: Path) -> None:
        self.env = {**os.environ, "PYTHONPATH": str(REPO)}
        for section, value in config.items():
            if section == "pipeline":
                value = {**value, "worker_id": worker_id}
            self.env[f"BREAKWATER_{section.upper()}"] = (
                json.dumps(value) if not isinstance(value, str) else value
            )
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.worker"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
