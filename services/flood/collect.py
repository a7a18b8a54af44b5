"""The still picture at the end of a flood: what every topic and the simulator hold.

Read after the worker stopped, so nothing moves while it is read: committed offsets (from
:func:`consumer_lag`) split each queue into consumed and still in flight, and the topics say what was
delivered to Kafka, retried, dead-lettered and quarantined.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from schemas.deadletter import DeadLetter, QuarantineRecord
from schemas.envelope import WebhookEnvelope
from schemas.headers import DESTINATION_HEADER
from schemas.retry import RetryRecord
from schemas.topics import PipelineTopics
from services.kafka.clients import KafkaTarget
from services.operators.reader import read_snapshot
from services.operators.stats import PartitionLag, consumer_lag

READ_TIMEOUT = 120.0


@dataclass
class Collected:
    """Counts and keys from the topics and the simulator's log."""

    delivered: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    dead: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    quarantined: set[str] = field(default_factory=set)
    pending: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    retried: Counter[str] = field(default_factory=Counter)
    """tier → records written to it."""
    retried_by_destination: Counter[str] = field(default_factory=Counter)
    inbound_consumed: int = 0
    passed_dedup: int = 0
    received_at: dict[str, float] = field(default_factory=dict)
    delivered_at: dict[str, list[tuple[str, float]]] = field(default_factory=lambda: defaultdict(list))
    """destination → (key, wall-clock seconds of the delivery)."""
    simulator_statuses: dict[str, dict[str, int]] = field(default_factory=dict)

    def forget(self, key: str) -> None:
        """Leave one key out of every figure (the readiness probe: consumed once, passed dedup once)."""
        if key in self.delivered.get("events", {}):
            self.inbound_consumed -= 1
            self.passed_dedup -= 1
        for counts in self.delivered.values():
            counts.pop(key, None)
        for dest, rows in self.delivered_at.items():
            self.delivered_at[dest] = [row for row in rows if row[0] != key]
        self.received_at.pop(key, None)

    def add_pending(
        self, envelope_json: bytes, destination: bytes | None, routed: Callable[[str, str], list[str]]
    ) -> None:
        """An envelope not yet consumed from inbound or a ready topic: in flight to its destinations."""
        envelope = WebhookEnvelope.model_validate_json(envelope_json)
        names = [destination.decode()] if destination else routed(envelope.provider, envelope.event_type)
        for name in names:
            self.pending[name].add(envelope.key)

    @property
    def duplicates_dropped(self) -> int:
        return max(0, self.inbound_consumed - self.passed_dedup - len(self.quarantined))


def _committed(lags: list[PartitionLag]) -> dict[tuple[str, int], int]:
    """(topic, partition) → first offset not yet consumed by its group (0 when never committed)."""
    return {(row.topic, row.partition): row.committed or 0 for row in lags}


async def collect(
    kafka: KafkaTarget, topics: PipelineTopics, sim_url: str, routed: Callable[[str, str], list[str]]
) -> Collected:
    """Read every topic of the flood's pipeline and the simulator's log."""
    seen = Collected()
    committed = _committed(await consumer_lag(kafka, topics.queues()))

    async def read(topic: str) -> list[Any]:
        snapshot = await read_snapshot(kafka, topic, max_records=2_000_000, timeout=READ_TIMEOUT)
        return snapshot.records

    inbound, events, dlq, quarantine, *rest = await asyncio.gather(
        read(topics.inbound),
        read(topics.events),
        read(topics.dlq),
        read(topics.quarantine),
        *(read(topics.ready(p)) for p in topics.providers),
        *(read(topics.retry(t)) for t in topics.retry_tiers),
    )
    ready, retries = rest[: len(topics.providers)], rest[len(topics.providers) :]
    for record in inbound:
        if record.offset < committed.get((record.topic, record.partition), 0):
            seen.inbound_consumed += 1
        else:
            seen.add_pending(record.value, None, routed)
    for records in ready:
        for record in records:
            header = dict(record.headers).get(DESTINATION_HEADER)
            if header is None:
                seen.passed_dedup += 1
            if record.offset >= committed.get((record.topic, record.partition), 0):
                seen.add_pending(record.value, header, routed)
    for tier, records in zip(topics.retry_tiers, retries, strict=True):
        for record in records:
            retry = RetryRecord.model_validate_json(record.value)
            seen.retried[tier] += 1
            seen.retried_by_destination[retry.destination] += 1
            if record.offset >= committed.get((record.topic, record.partition), 0):
                seen.pending[retry.destination].add(retry.envelope.key)
    for record in events:
        event = json.loads(record.value)
        key = event["key"]
        seen.delivered["events"][key] += 1
        seen.received_at.setdefault(key, datetime.fromisoformat(event["received_at"]).timestamp())
        seen.delivered_at["events"].append((key, record.timestamp / 1000))
    for record in dlq:
        letter = DeadLetter.model_validate_json(record.value)
        seen.dead[letter.destination].add(letter.envelope.key)
    for record in quarantine:
        quarantined = QuarantineRecord.model_validate_json(record.value)
        seen.quarantined.add((quarantined.key or b"").decode("utf-8", "replace"))
    await _simulator(sim_url, seen)
    return seen


async def _simulator(sim_url: str, seen: Collected) -> None:
    async with httpx.AsyncClient(timeout=30.0) as client:
        response = await client.get(f"{sim_url}/_sim/log")
        response.raise_for_status()
        log: dict[str, list[list[Any]]] = response.json()
    for dest, rows in log.items():
        statuses: Counter[str] = Counter()
        for key, status, arrived, _answered in rows:
            statuses[str(status)] += 1
            if 200 <= status < 300:
                seen.delivered[dest][key] += 1
                seen.delivered_at[dest].append((key, arrived))
        seen.simulator_statuses[dest] = dict(statuses)
