"""Scale-out tests: three KRaft brokers on loopback, several edges and workers (make test-scale)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.config import LocalKafkaSettings
from services.kafka.local import LocalCluster, fetch_jars


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three brokers (each also a controller) for the run; a test may stop one and starts it again."""
    local = LocalKafkaSettings()
    cluster = LocalCluster.create(
        fetch_jars(local.version, local.cache_dir), tmp_path_factory.mktemp("cluster")
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"
