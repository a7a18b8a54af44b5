"""How the transactional loop reacts to failed transactions and restores, with no broker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import MessageSizeTooLargeError, ProducerFenced

from streams.batching import _Pending
from streams.eos import LoopConfig, TransactionalLoop
from streams.eos_types import Out, StatelessHandler

TP = TopicPartition("t", 0)


class Handler(StatelessHandler):
    async def handle(self, batch: Any) -> Any:
        raise AssertionError("not called")


class FakeProducer:
    _txn_manager = None

    async def begin_transaction(self) -> None:
        pass

    async def commit_transaction(self) -> None:
        raise AssertionError("a transaction with a failed output must not commit")

    async def send_offsets_to_transaction(self, offsets: object, group: str) -> None:
        pass


class FakeSender:
    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = errors

    async def send(self, outputs: list[Out]) -> list[_Pending]:
        pending = []
        for i, error in enumerate(self.errors):
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            future.set_exception(error)
            pending.append(_Pending(TP, 1, future, [Out("t", b"k", b"v", origin=("src", 0, i))]))
        return pending


async def loop_with(errors: list[BaseException]) -> TransactionalLoop:
    config = LoopConfig(
        name="test", bootstrap="localhost:1", group_id="g", transactional_id="x", topics=("src",)
    )
    loop = TransactionalLoop(config, Handler())
    await loop._producer.stop()  # never started: replaced by the fake
    loop._producer = FakeProducer()
    loop._batch_sender = FakeSender(errors)  # type: ignore[assignment]
    LOOPS.append(loop)
    return loop


LOOPS: list[TransactionalLoop] = []


@pytest.fixture(autouse=True)
async def _close_consumers() -> Any:
    yield
    while LOOPS:
        await LOOPS.pop()._consumer.stop()


@pytest.mark.parametrize(
    "errors",
    [[ProducerFenced()], [MessageSizeTooLargeError(), ProducerFenced()]],
    ids=["fenced", "refused-and-fenced"],
)
async def test_a_send_failed_by_a_fenced_producer_stops_the_loop_instead_of_renewing(
    errors: list[BaseException],
) -> None:
    """Renewing would fence the process that took the transactional id, which fences back, for ever."""
    loop = await loop_with(errors)

    async def renew() -> None:
        raise AssertionError("a fenced producer must not fence its rival")

    loop._renew_producer = renew  # type: ignore[method-assign]
    loop._inflight = asyncio.create_task(loop._commit([], {}, None))  # type: ignore[arg-type]
    with pytest.raises(ProducerFenced):
        await loop.settle()
    assert loop.refused == 0 and not loop._refusals


async def test_a_refused_output_still_renews_the_producer() -> None:
    loop = await loop_with([MessageSizeTooLargeError()])
    renewed = []

    async def renew() -> None:
        renewed.append(True)

    loop._renew_producer = renew  # type: ignore[method-assign]
    loop._consumer.assignment = lambda: set()
    loop._inflight = asyncio.create_task(loop._commit([], {}, None))  # type: ignore[arg-type]
    assert await loop.settle() is False
    assert renewed == [True] and loop.refused == 1


class FailingRestore(Handler):
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.opened: set[TopicPartition] = set()

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        if self.failures:
            self.failures -= 1
            raise Exception("IO error: lock hold by current process")  # what rocksdict raises
        self.opened |= partitions


async def test_a_store_that_fails_to_open_leaves_its_partition_paused_unopened_and_retried() -> None:
    loop = await loop_with([])
    loop.handler = handler = FailingRestore(failures=1)
    paused: set[TopicPartition] = set()
    consumer = loop._consumer
    consumer.assignment = lambda: {TP}
    consumer.pause = lambda *tps: paused.update(tps)
    consumer.resume = lambda *tps: paused.difference_update(tps)

    async def stable(partitions: set[TopicPartition]) -> None:
        pass

    loop.wait_until_stable = stable  # type: ignore[method-assign]
    await loop.open_partitions({TP})  # must not raise: aiokafka's listener would swallow it
    assert loop.unopened == {TP} and paused == {TP} and loop.restore_failures == 1
    assert "lock hold" in (loop.kafka_error or "")
    await loop.open_partitions(set(loop.unopened))  # the retry _step makes once the backoff is due
    assert handler.opened == {TP} and not loop.unopened and not paused and loop.kafka_error is None
