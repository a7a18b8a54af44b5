"""Every private aiokafka member the Kafka boundary relies on is still where it was (no broker).

:mod:`services.kafka.internals` and :mod:`services.kafka.group_fencing` reach into aiokafka 0.14
where it has no public way. An upgrade that renames or moves one of those members fails here, with
its name, instead of at run time in a worker (where some would only fail on the first rebalance).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import errors as Errors
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.errors import KafkaTimeoutError
from aiokafka.producer.sender import Sender, TxnOffsetCommitHandler

from services.errors import BreakwaterError
from services.kafka import clients
from services.kafka.group_fencing import GroupFenced, UnstableOffsetCommit
from services.kafka.internals import fail_pending, group_coordinator, in_transaction

NOWHERE = "127.0.0.1:9"  # nothing listens there; no client here is started


@pytest.fixture
async def producer() -> AsyncIterator[AIOKafkaProducer]:
    built = clients.producer(NOWHERE, transactional_id="internals-test")
    yield built
    await built.stop()


@pytest.fixture
async def consumer() -> AsyncIterator[AIOKafkaConsumer]:
    built = clients.consumer(NOWHERE, group_id="internals-test")
    yield built
    await built.stop()


def member(owner: Any, dotted: str) -> Any:
    """``owner.a.b``, failing with the first missing part's name."""
    for name in dotted.split("."):
        assert hasattr(owner, name), f"aiokafka moved {type(owner).__name__}.{name} (needed: {dotted})"
        owner = getattr(owner, name)
    return owner


def assigned_in_init(cls: type) -> set[str]:
    """Attributes ``cls.__init__`` assigns on ``self`` (instance attributes a class cannot show)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(vars(cls)["__init__"])))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    }


PRODUCER_MEMBERS = [
    "_txn_manager.is_in_transaction",  # internals.in_transaction
    "_message_accumulator.fail_all",  # internals.fail_pending
    "client.fetch_all_metadata",  # internals.cluster_metadata
    "_sender._txn_manager",  # group_fencing: the sender's own transaction manager
    "_sender._find_coordinator",
    "_sender._do_txn_offset_commit",  # replaced by fence_offsets_by_generation
    "_txn_manager.transactional_id",
    "_txn_manager.producer_id",
    "_txn_manager.producer_epoch",
    "_txn_manager.error_transaction",
    "_txn_manager._pending_txn_offsets.popleft",  # group_fencing._refuse
]


@pytest.mark.parametrize("dotted", PRODUCER_MEMBERS)
async def test_a_producer_still_has(producer: AIOKafkaProducer, dotted: str) -> None:
    member(producer, dotted)


@pytest.mark.parametrize(
    "dotted", ["_coordinator", "_client.force_metadata_update", "_client.fetch_all_metadata"]
)
async def test_a_consumer_still_has(consumer: AIOKafkaConsumer, dotted: str) -> None:
    member(consumer, dotted)  # _coordinator is None until start(): then a GroupCoordinator, below


@pytest.mark.parametrize(
    "name",
    [
        "fetch_committed_offsets",  # internals.wait_for_committed_offsets
        "_do_fetch_commit_offsets",  # replaced by read_stable_offsets
        "_send_req",
        "request_rejoin",  # rejoin_after
        "reset_generation",
        "coordinator_dead",
    ],
)
def test_the_group_coordinator_still_has_method(name: str) -> None:
    assert callable(getattr(GroupCoordinator, name, None)), f"aiokafka moved GroupCoordinator.{name}"


@pytest.mark.parametrize("name", ["generation", "member_id", "group_id", "coordinator_id"])
def test_the_group_coordinator_still_keeps(name: str) -> None:
    assert name in assigned_in_init(GroupCoordinator), f"aiokafka moved GroupCoordinator.{name}"


def test_the_hooks_are_still_called_through_the_instance() -> None:
    """Both fences replace a method on one instance: aiokafka must still call it through ``self``."""
    assert "self._do_txn_offset_commit(" in inspect.getsource(Sender)
    assert "self._do_fetch_commit_offsets(" in inspect.getsource(GroupCoordinator.fetch_committed_offsets)


def test_the_txn_offset_commit_handler_still_has_its_shape() -> None:
    """The fenced handler subclasses aiokafka's and hands it v3 answers seen as v0 (``resp.errors``)."""
    assert {"_offsets", "_group_id"} <= assigned_in_init(TxnOffsetCommitHandler)
    assert "_sender" in assigned_in_init(TxnOffsetCommitHandler.__mro__[1])
    for name in ("create_request", "handle_response", "do"):
        assert callable(getattr(TxnOffsetCommitHandler, name, None)), f"aiokafka moved {name}"
    assert list(inspect.signature(TxnOffsetCommitHandler.__init__).parameters) == [
        "self",
        "sender",
        "offsets",
        "group_id",
    ]
    assert "resp.errors" in inspect.getsource(TxnOffsetCommitHandler.handle_response)


async def test_the_accessors_work_on_unstarted_clients(
    producer: AIOKafkaProducer, consumer: AIOKafkaConsumer
) -> None:
    assert in_transaction(producer) is False
    fail_pending(producer, KafkaTimeoutError("nothing is pending"))
    assert group_coordinator(consumer) is None


@pytest.mark.parametrize(("error", "retriable"), [(GroupFenced, False), (UnstableOffsetCommit, True)])
def test_the_fencing_errors_are_aiokafka_errors_and_breakwater_errors(
    error: type[GroupFenced | UnstableOffsetCommit], retriable: bool
) -> None:
    """aiokafka retries what is ``retriable`` among its ``KafkaError``s; Breakwater asks ``retryable``."""
    assert issubclass(error, Errors.KafkaError) and issubclass(error, BreakwaterError)
    assert error.retriable is retriable and error.retryable is retriable


def test_the_acl_request_is_where_the_acl_boundary_sends_it() -> None:
    """services/kafka/acl_protocol.py: the admin client's ``_send_request`` and the CreateAcls request."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.protocol.admin import CreateAclsRequest

    assert "request" in inspect.signature(member(AIOKafkaAdminClient, "_send_request")).parameters
    parameters = list(inspect.signature(CreateAclsRequest).parameters)
    assert parameters == [
        "resource_type",
        "resource_name",
        "resource_pattern_type_filter",
        "principal",
        "host",
        "operation",
        "permission_type",
    ]
