"""The project's broker tooling against a port race: another broker answering on our port is not ours."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.config import LocalKafkaSettings
from services.kafka.local import LocalKafka, LocalKafkaError, fetch_jars, free_ports

pytestmark = pytest.mark.kafka


def test_a_broker_whose_port_another_took_fails_instead_of_borrowing_the_other(
    kafka_broker: LocalKafka | None, tmp_path: Path
) -> None:
    if kafka_broker is None:
        pytest.skip("needs the run's own local broker to collide with")
    defaults = LocalKafkaSettings()
    (controller_port,) = free_ports(1)
    late = LocalKafka(
        libs=fetch_jars(defaults.version, defaults.cache_dir),
        home=tmp_path / "late",
        port=kafka_broker.port,  # taken between "free" and bind, as by a second test run
        controller_port=controller_port,
        heap="256m",
    )
    late.launch()
    try:
        with pytest.raises(LocalKafkaError, match="exited"):
            late.wait_ready(timeout=60)
    finally:
        late.kill()
