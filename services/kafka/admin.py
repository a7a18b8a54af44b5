"""Talking to a broker as an administrator: is it there, and does it hold the catalogue's topics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, TopicAuthorizationFailedError, for_code

from schemas.topics import TopicSpec
from services.errors import BreakwaterError
from services.kafka import clients
from services.kafka.clients import KafkaTarget

log = logging.getLogger(__name__)


async def cluster_size(bootstrap: KafkaTarget, timeout: float = 5.0) -> int:
    """Brokers in the cluster; raises when no broker answers a metadata request in ``timeout``."""
    admin = clients.admin(bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        metadata = await asyncio.wait_for(admin.describe_cluster(), timeout)
        return len(metadata["brokers"])
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def broker_answers(bootstrap: KafkaTarget, timeout: float = 5.0) -> bool:
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


class TopicError(BreakwaterError):
    """The broker refused to create a catalogue topic; the message names it and the reason."""


class MissingTopicsError(TopicError):
    """Catalogue topics are missing and the broker refused to create them: every one is named.

    A principal without create rights (a worker on a cluster with ACLs) needs the topics made first by
    an administrator (``breakwater topics ensure``).
    """

    def __init__(self, refused: dict[str, str]) -> None:
        self.topics = sorted(refused)
        reasons = sorted(set(refused.values()))
        hint = (
            "; this principal may not create topics: an administrator creates them (breakwater topics ensure)"
            if any(r.startswith(TopicAuthorizationFailedError.__name__) for r in reasons)
            else ""
        )
        super().__init__(
            f"{len(self.topics)} topic(s) missing and not created ({', '.join(reasons)}){hint}: "
            + ", ".join(self.topics)
        )


@dataclass(frozen=True)
class EnsureResult:
    created: list[str]
    grown: list[str]
    present: list[str]
    reconfigured: list[str] = field(default_factory=list)
    """Existing topics whose size limit was raised to the catalogue's (see :data:`RAISED_CONFIGS`)."""


RAISED_CONFIGS = ("max.message.bytes",)
"""Configs an existing topic is brought up to: a topic created before the catalogue raised its record
size refuses records every stage now writes, so ``ensure`` raises it (never lowers it). Other configs
(retention, say) may be an operator's choice and are left as they are."""

DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs config_source: set on the topic itself


async def _raise_limits(admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec]) -> list[str]:
    """Raise each existing topic's :data:`RAISED_CONFIGS` to the spec's; the names of those changed.

    AlterConfigs replaces a topic's whole set of overrides, so the current overrides are sent along.
    """
    wanted = {s.name: {k: s.configs[k] for k in RAISED_CONFIGS if k in s.configs} for s in specs}
    names = [name for name, configs in wanted.items() if configs]
    if not names:
        return []
    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    changes: list[ConfigResource] = []
    for response in responses:
        for resource in response.to_object()["resources"]:
            name = resource["resource_name"]
            if resource["error_code"] != 0 or name not in wanted:
                continue
            entries = resource["config_entries"]
            effective = {e["config_names"]: e["config_value"] for e in entries}
            overrides = {
                e["config_names"]: e["config_value"]
                for e in entries
                if e.get("config_source", DYNAMIC_TOPIC_CONFIG if not e.get("is_default") else 0)
                == DYNAMIC_TOPIC_CONFIG
            }
            raise_to = {
                key: value for key, value in wanted[name].items() if int(effective.get(key) or 0) < int(value)
            }
            if raise_to:
                for key, value in raise_to.items():
                    log.warning("topic %s: raising %s from %s to %s", name, key, effective.get(key), value)
                changes.append(ConfigResource(ConfigResourceType.TOPIC, name, {**overrides, **raise_to}))
    if not changes:
        return []
    for response in await admin.alter_configs(changes):
        for resource in response.to_object()["resources"]:
            if resource["error_code"] != 0:
                error = for_code(resource["error_code"])
                raise TopicError(
                    f"cannot raise the size limit of topic {resource['resource_name']}: "
                    f"{error.__name__} {resource.get('error_message') or ''}".rstrip()
                )
    return sorted(change.name for change in changes)


async def ensure_topics(
    bootstrap: KafkaTarget, specs: Sequence[TopicSpec], timeout: float = 30.0, *, raise_limits: bool = True
) -> EnsureResult:
    """Create missing topics, grow partition counts, raise size limits; never shrinks or deletes.

    Safe to repeat. Existing topics get the catalogue's :data:`RAISED_CONFIGS` when theirs are lower,
    unless ``raise_limits`` is off: a worker leaves existing topics' configs to the operator (who may have
    set them on purpose, and whose principal may be the only one allowed to alter them); a record such a
    topic refuses becomes a bounded record (streams.batching.Refusals), never a loss.
    """
    admin = clients.admin(bootstrap, request_timeout_ms=int(timeout * 1000))
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
            refused: dict[str, str] = {}
            for name, code, message in response.topic_errors:
                if code == 0:
                    created.append(name)
                elif code == TopicAlreadyExistsError.errno:  # another process won the race: fine
                    existing[name] = next(s.partitions for s in specs if s.name == name)
                else:
                    refused[name] = f"{for_code(code).__name__} {message or ''}".rstrip()
            if refused:
                raise MissingTopicsError(refused)
        grow = {
            spec.name: NewPartitions(spec.partitions)
            for spec in specs
            if spec.name in existing and existing[spec.name] < spec.partitions
        }
        if grow:
            await admin.create_partitions(grow, timeout_ms=int(timeout * 1000))
        reconfigured = (
            await _raise_limits(admin, [spec for spec in specs if spec.name in existing])
            if raise_limits
            else []
        )
        present = [name for name in existing if name not in grow]
        return EnsureResult(
            created=created, grown=sorted(grow), present=sorted(present), reconfigured=reconfigured
        )
    finally:
        await admin.close()
