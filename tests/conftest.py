"""Fixtures shared by every suite: one real Kafka broker per test run, started here and stopped here.

The broker is the project's own embedded default (official jars on the JVM), started by
:func:`services.kafka.local.start_fresh_broker` as the flood and the benchmarks start theirs.
Set BREAKWATER_TEST_BOOTSTRAP to run the suites against a broker you started yourself; where a Docker
engine answers, BREAKWATER_TEST_DOCKER=1 uses testcontainers' Kafka module instead.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.kafka.local import LocalKafka, start_fresh_broker

KAFKA_FIXTURES = frozenset({"kafka_broker", "kafka_bootstrap", "private_broker", "secure_broker"})
UNIT_TESTS = Path(__file__).parent / "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that reaches a broker, through any fixture, carries the ``kafka`` mark.

    A ``pytestmark`` in a conftest marks nothing, so marks by hand went missing; the fixtures are the
    truth. A unit test that asks for a broker is refused: ``tests/unit`` must need nothing running.
    """
    for item in items:
        if not KAFKA_FIXTURES & set(getattr(item, "fixturenames", ())):
            continue
        if item.path.is_relative_to(UNIT_TESTS):
            raise pytest.UsageError(f"{item.nodeid}: a unit test may not use a Kafka broker")
        item.add_marker(pytest.mark.kafka)


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    """Logging as the test found it: a command run in process (``configure_logging``) replaces the root
    handlers with one on the stderr of that moment, which a later test may find closed."""
    root, aiokafka, sender = (logging.getLogger(n) for n in ("", "aiokafka", "aiokafka.producer.sender"))
    saved = (list(root.handlers), root.level, aiokafka.level, list(sender.filters))
    try:
        yield
    finally:
        root.handlers[:], sender.filters[:] = saved[0], saved[3]
        root.setLevel(saved[1])
        aiokafka.setLevel(saved[2])


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka | None]:
    """The run's broker object, or None when the tests use an external or containerised one."""
    if os.environ.get("BREAKWATER_TEST_BOOTSTRAP"):
        yield None
        return
    if os.environ.get("BREAKWATER_TEST_DOCKER") == "1":
        from testcontainers.kafka import KafkaContainer  # only where a Docker engine answers

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
            os.environ["BREAKWATER_TEST_BOOTSTRAP"] = container.get_bootstrap_server()
            yield None
        return
    broker = start_fresh_broker(tmp_path_factory.mktemp("kafka"))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: LocalKafka | None) -> str:
    """``host:port`` of a real broker shared by the whole run."""
    if kafka_broker is None:
        return os.environ["BREAKWATER_TEST_BOOTSTRAP"]
    return kafka_broker.bootstrap


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker of the test's own, for tests that stop, kill or restart it."""
    broker = start_fresh_broker(tmp_path / "kafka")
    try:
        yield broker
    finally:
        broker.stop(timeout=10)


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Names that no other test uses: topics, groups, transactional ids."""
    run = uuid.uuid4().hex[:8]
    return lambda prefix: f"{prefix}-{run}"
