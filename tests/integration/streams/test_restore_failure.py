"""Issue #13, defect 3: a restore that fails on assignment must never leave a loop processing partitions
whose store was never opened (aiokafka swallows a rebalance listener's error; the worker then died on
a ``KeyError`` in ``DedupHandler.handle``).

The first test makes the changelog restore fail twice, as ``end_offsets`` did with LeaderNotAvailable
during a broker outage, on the run's broker. The second stops a broker of its own for 40 s while a
worker process has records flowing, and checks the worker rides it out: it stays up, says not ready
while Kafka is away and ready again after, delivers everything exactly once, and logs a bounded number
of ERROR lines.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import LeaderNotAvailableError

from services.kafka.local import LocalKafka, free_ports, wait_until_answers
from streams.dedup_store import PartitionStore
from tests.support.pipeline import (
    CommittedReader,
    WorkerProcess,
    create_topics,
    envelope,
    pipeline_config,
    produce,
    running_worker,
    settings_of,
)
from tests.support.waiting import until

pytestmark = pytest.mark.kafka
OUTAGE_SECONDS = 40
MAX_ERROR_LINES = 60


async def test_a_restore_that_fails_is_retried_and_no_unopened_partition_is_processed(
    config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_of(config)
    topics = await create_topics(settings)
    sent = [envelope("stripe", f"evt_{i}") for i in range(300)]
    await produce(settings, sent)
    real_restore = PartitionStore.restore
    calls: list[TopicPartition] = []

    async def flaky_restore(self: PartitionStore, consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
        calls.append(tp)
        if len(calls) <= 2:  # as end_offsets failed in the outage: after the changelog was assigned
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            raise LeaderNotAvailableError(f"no leader for {tp} (injected)")
        return await real_restore(self, consumer, tp)

    monkeypatch.setattr(PartitionStore, "restore", flaky_restore)
    async with (
        CommittedReader(settings.kafka.servers, topics.name("webhooks.events")) as events,
        running_worker(settings) as metrics,
    ):
        await events.until(lambda r: len(r.records) >= len(sent), 90, "every event")
        await events.settle(1.0)
    assert sorted(events.keys()) == sorted(e.key.encode() for e in sent)  # each exactly once
    assert metrics["dedup.new"] == len(sent)
    assert len(calls) >= 2 + 4  # two failures, then every one of the 4 partitions restored


LAST_READYZ: list[str] = []


def _readyz(port: int) -> bool | None:
    """True/False from /readyz, None when the probe does not answer at all."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
    except httpx.HTTPError:
        return None
    LAST_READYZ[:] = [response.text]
    return response.status_code == 200


def _error_lines(log: Path) -> Counter[str]:
    """ERROR lines of the worker's JSON log, by logger."""
    counts: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if " ERROR " in line or line.startswith("ERROR"):
                counts["(text)"] += 1
            continue
        if isinstance(entry, dict) and str(entry.get("level", "")).upper() == "ERROR":
            counts[str(entry.get("logger", entry.get("name", "?")))] += 1
    return counts


async def test_a_forty_second_broker_outage_is_ridden_out_exactly_once(
    private_broker: LocalKafka, tmp_path: Path
) -> None:
    (probe_port,) = free_ports(1)
    config = pipeline_config(
        private_broker.bootstrap, "outage", tmp_path / "state", probe_port=probe_port, probe_host="127.0.0.1"
    )
    settings = settings_of(config)
    topics = await create_topics(settings)
    log = tmp_path / "worker.log"
    worker = WorkerProcess(config, "w1", log)
    before = [envelope("stripe" if i % 2 else "github", f"evt_a{i}") for i in range(3000)]
    after = [envelope("stripe" if i % 2 else "github", f"evt_b{i}") for i in range(1000)]
    worker.start()
    try:
        await until(lambda: _readyz(probe_port) is True, timeout=90, what="the worker to be ready")
        await produce(settings, before)
        async with CommittedReader(settings.kafka.servers, topics.name("webhooks.events")) as events:
            await events.until(lambda r: len(r.records) >= 200, 60, "records flowing")
        errors_before = sum(_error_lines(log).values())

        stopped_at = time.monotonic()
        await asyncio.to_thread(private_broker.stop)
        await until(lambda: _readyz(probe_port) is False, timeout=30, what="readyz to say not ready")
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))  # the outage
        assert worker.alive(), "the worker exited during the outage"
        await asyncio.to_thread(private_broker.start)
        await wait_until_answers(private_broker.bootstrap, 60)

        try:
            await until(lambda: _readyz(probe_port) is True, timeout=120, what="readyz to be ready again")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last /readyz: {LAST_READYZ}") from None
        await produce(settings, after)
        async with CommittedReader(settings.kafka.servers, topics.name("webhooks.events")) as events:
            await events.until(lambda r: len(r.records) >= len(before) + len(after), 180, "every event")
            await events.settle(2.0)
        assert worker.alive(), "the worker exited after the outage"
    finally:
        code = worker.stop()
    keys = Counter(events.keys())
    assert set(keys) == {e.key.encode() for e in before + after}
    assert [k for k, n in keys.items() if n > 1] == []  # exactly once
    errors = _error_lines(log)
    assert sum(errors.values()) - errors_before <= MAX_ERROR_LINES, errors.most_common(5)
    assert code == 0, log.read_text()[-3000:]
