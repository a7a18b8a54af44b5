"""Talking to a broker as an administrator: is it there, and does it hold the catalogue's topics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from schemas.topics import TopicSpec

log = logging.getLogger(__name__)


async def cluster_size(bootstrap: str, timeout: float = 5.0) -> int:
    """Brokers in the cluster; raises when no broker answers a metadata request in ``timeout``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        metadata = await asyncio.wait_for(admin.describe_cluster(), timeout)
        return len(metadata["brokers"])
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def broker_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """True when a broker answers a metadata request (synchronous: for CLIs and start-up checks)."""
    client_log = logging.getLogger("aiokafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)  # "Unable connect" is the expected answer while it starts
    try:
        return asyncio.run(cluster_size(bootstrap, timeout)) > 0
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        client_log.setLevel(level)


class TopicError(RuntimeError):
    """The broker refused to create a catalogue topic; the message names it and the reason."""


@dataclass(frozen=True)
class EnsureResult:
    created: list[str]
    grown: list[str]
    present: list[str]


async def ensure_topics(bootstrap: str, specs: Sequence[TopicSpec], timeout: float = 30.0) -> EnsureResult:
    """Create missing topics and grow partition counts; never shrinks or deletes. Safe to repeat."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    await admin.start()
    try:
        existing = {
            item["topic"]: len(item["partitions"])
            for item in await admin.describe_topics([spec.name for spec in specs])
            if item["error_code"] == 0
        }
        missing = [spec for spec in specs if spec.name not in existing]
        created: list[str] = []
        if missing:
            topics = [
                NewTopic(
                    spec.name, spec.partitions, spec.replication_factor, topic_configs=dict(spec.configs)
                )
                for spec in missing
            ]
            response = await admin.create_topics(topics, timeout_ms=int(timeout * 1000))
            for name, code, message in response.topic_errors:
                if code == 0:
                    created.append(name)
                elif code == TopicAlreadyExistsError.errno:  # another process won the race: fine
                    existing[name] = next(s.partitions for s in specs if s.name == name)
                else:
                    error = for_code(code)
                    raise TopicError(f"cannot create topic {name}: {error.__name__} {message or ''}".rstrip())
        grow = {
            spec.name: NewPartitions(spec.partitions)
            for spec in specs
            if spec.name in existing and existing[spec.name] < spec.partitions
        }
        if grow:
            await admin.create_partitions(grow, timeout_ms=int(timeout * 1000))
        present = [name for name in existing if name not in grow]
        return EnsureResult(created=created, grown=sorted(grow), present=sorted(present))
    finally:
        await admin.close()
