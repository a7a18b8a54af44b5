"""Least privilege on a secured cluster: the ACLs each Breakwater role needs, and nothing more.

:func:`pipeline_acls` is pure: from one pipeline's names (:class:`schemas.topics.PipelineTopics`) and
the principal of each role it returns the bindings; ``breakwater acls`` prints them and, with
``--apply``, creates them (:func:`apply_acls`). Topics are created by an administrator
(``breakwater topics ensure``), so no role below may create or delete a topic::

    acls = pipeline_acls(PipelineTopics(providers=("stripe",), retry_tiers=("10s",)), RolePrincipals())
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiokafka.errors import for_code

from schemas.topics import ALERTS, DEDUP_ROLE, PipelineTopics, dispatch_role, retry_role
from services.errors import BreakwaterError
from services.kafka import clients
from services.kafka.acl_protocol import create_acl
from services.kafka.clients import KafkaTarget

__all__ = [
    "AclBinding",
    "AclError",
    "Operation",
    "Pattern",
    "Resource",
    "RolePrincipals",
    "apply_acls",
    "pipeline_acls",
]


class Resource(enum.IntEnum):
    """Kafka's resource type codes (the wire values of CreateAcls)."""

    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class Operation(enum.IntEnum):
    READ = 3
    WRITE = 4
    DESCRIBE = 8
    IDEMPOTENT_WRITE = 12


class Pattern(enum.IntEnum):
    LITERAL = 3
    PREFIXED = 4


CLUSTER_NAME = "kafka-cluster"


class AclError(BreakwaterError):
    """The cluster refused to create an ACL (the message names it and the broker's reason)."""


@dataclass(frozen=True, order=True)
class AclBinding:
    """Allow ``principal`` to ``operation`` on a resource (a literal name, or every name with a prefix)."""

    principal: str
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation

    def describe(self) -> str:
        star = "*" if self.pattern is Pattern.PREFIXED else ""
        return f"{self.principal} {self.operation.name} {self.resource.name} {self.name}{star}"


@dataclass(frozen=True)
class RolePrincipals:
    """The principal of each role (``User:<SASL user>``); ``admin`` is a super user, needing no ACLs."""

    edge: str = "User:edge"
    worker: str = "User:worker"
    operator: str = "User:operator"
    consumer: str = "User:consumer"
    consumer_group_prefix: str = "consumer-"
    """Downstream consumers' groups start with this."""

    def roles(self) -> dict[str, str]:
        return {
            "edge": self.edge,
            "worker": self.worker,
            "operator": self.operator,
            "consumer": self.consumer,
        }


def _grants(
    principal: str, resource: Resource, names: Iterable[str], *operations: Operation, pattern: Pattern
) -> list[AclBinding]:
    return [AclBinding(principal, resource, n, pattern, op) for n in names for op in operations]


def pipeline_acls(
    topics: PipelineTopics, principals: RolePrincipals, route_topics: Sequence[str] = ()
) -> list[AclBinding]:
    """Every ACL of one pipeline, sorted; ``route_topics``: Kafka destinations besides the events topic.

    - edge: write (idempotently) the inbound topic, nothing else;
    - worker: read its inputs, write its outputs, its loops' transactional ids and groups, and see
      (describe) the rest of the catalogue, which it checks at start;
    - operator: read dead letters, quarantine and their marks, write what a replay writes (ready topics,
      the marks) and the reliability monitor's alerts, the replay's transactional id, and describe the
      worker groups (``stats``);
    - consumer: read the events topics, with groups under its own prefix.
    """
    literal, prefixed = Pattern.LITERAL, Pattern.PREFIXED
    read, write, describe = Operation.READ, Operation.WRITE, Operation.DESCRIBE
    events = [topics.events, *[t for t in route_topics if t != topics.events]]
    ready = [topics.ready(p) for p in topics.providers]
    retry = [topics.retry(t) for t in topics.retry_tiers]
    roles = [DEDUP_ROLE, *map(dispatch_role, topics.providers), *map(retry_role, topics.retry_tiers)]
    worker_reads = [topics.inbound, *ready, *retry, topics.dedup_changelog]
    worker_writes = [
        topics.inbound,  # records the dedup loop forwards to the partition that owns their key
        *ready,
        *retry,
        *events,
        topics.dlq,
        topics.quarantine,
        topics.dedup_changelog,
    ]
    edge, worker, operator, consumer = (
        principals.edge,
        principals.worker,
        principals.operator,
        principals.consumer,
    )
    cluster = [CLUSTER_NAME]
    bindings = [
        *_grants(edge, Resource.TOPIC, [topics.inbound], write, describe, pattern=literal),
        *_grants(edge, Resource.CLUSTER, cluster, Operation.IDEMPOTENT_WRITE, pattern=literal),
        *_grants(worker, Resource.TOPIC, worker_reads, read, describe, pattern=literal),
        *_grants(worker, Resource.TOPIC, worker_writes, write, describe, pattern=literal),
        # ensure_topics at start sees the whole catalogue exists (Describe only: it writes neither).
        *_grants(worker, Resource.TOPIC, [topics.dlq_state, topics.name(ALERTS)], describe, pattern=literal),
        *_grants(worker, Resource.GROUP, [topics.group(r) for r in roles], read, describe, pattern=literal),
        *_grants(
            worker,
            Resource.TRANSACTIONAL_ID,
            [topics.transactional_id(r, "") for r in roles],  # "{app_id}-{role}-": every worker's
            write,
            describe,
            pattern=prefixed,
        ),
        *_grants(worker, Resource.CLUSTER, cluster, Operation.IDEMPOTENT_WRITE, pattern=literal),
        *_grants(
            operator,
            Resource.TOPIC,
            [topics.dlq, topics.quarantine, topics.dlq_state],
            read,
            describe,
            pattern=literal,
        ),
        *_grants(
            operator,
            Resource.TOPIC,
            [*ready, topics.dlq_state, topics.name(ALERTS)],  # replays, marks; the reliability monitor
            write,
            describe,
            pattern=literal,
        ),
        *_grants(
            operator, Resource.TOPIC, [topics.inbound, *retry, *events], describe, pattern=literal
        ),  # lag figures
        *_grants(
            operator,
            Resource.TRANSACTIONAL_ID,
            [topics.replay_transactional_id],
            write,
            describe,
            pattern=literal,
        ),
        *_grants(operator, Resource.GROUP, [topics.group(r) for r in roles], describe, pattern=literal),
        *_grants(operator, Resource.CLUSTER, cluster, Operation.IDEMPOTENT_WRITE, pattern=literal),
        *_grants(consumer, Resource.TOPIC, events, read, describe, pattern=literal),
        *_grants(
            consumer, Resource.GROUP, [principals.consumer_group_prefix], read, describe, pattern=prefixed
        ),
    ]
    return sorted(set(bindings))


async def apply_acls(kafka: KafkaTarget, bindings: Sequence[AclBinding], timeout: float = 30.0) -> int:
    """Create ``bindings`` on the cluster (existing ones are left as they are); how many were sent."""
    admin = clients.admin(kafka, request_timeout_ms=int(timeout * 1000))
    await admin.start()
    try:
        answers = await asyncio.gather(  # one binding a request: all in flight at once
            *(create_acl(admin, b.resource, b.name, b.pattern, b.principal, b.operation) for b in bindings)
        )
        refused = [
            f"{b.describe()}: {for_code(code).__name__} {message or ''}".rstrip()
            for b, (code, message) in zip(bindings, answers, strict=True)
            if code
        ]
        if refused:
            raise AclError(f"the cluster refused {len(refused)} ACL(s): " + "; ".join(refused))
        return len(bindings)
    finally:
        await admin.close()
