"""A second ``make run`` must not stop the first one's broker (issue #13, item 12a).

``breakwater up`` and ``breakwater kafka start`` against a broker that another process started (here the
test module's own :func:`other_broker`) use it, say so, and leave it running; a taken edge port is refused
before anything starts.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from services.cli.main import app
from services.kafka.admin import broker_answers
from services.kafka.local import LocalKafka, free_ports, start_fresh_broker
from tests.support.pipeline import REPO

pytestmark = pytest.mark.kafka


def config_for(broker: LocalKafka, tmp_path: Path, edge_port: int) -> Path:
    """A config whose local broker is ``broker`` (same home, same ports), as a second checkout's would be."""
    path = tmp_path / "breakwater.toml"
    path.write_text(
        f"""environment = "test"
[kafka.local]
home = "{broker.home}"
port = {broker.port}
controller_port = {broker.controller_port}
[edge]
port = {edge_port}
[pipeline]
app_id = "second-up"
topic_prefix = "second-up."
state_dir = "{tmp_path / "state"}"
[providers.stripe]
secrets = ["whsec_test"]
"""
    )
    return path


@pytest.fixture(scope="module")
def other_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A broker this test process started, so to ``up`` and ``kafka start`` another process's.

    One for the module (a JVM start is the slow part); every test leaves it running, as it must.
    """
    broker = start_fresh_broker(tmp_path_factory.mktemp("other-kafka"))
    try:
        yield broker
    finally:
        broker.stop(timeout=10)


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something already listens on (the first ``make run``'s edge)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_kafka_start_finds_the_running_broker_and_leaves_it(other_broker: LocalKafka, tmp_path: Path) -> None:
    config = config_for(other_broker, tmp_path, next(free_ports(1)))
    result = CliRunner().invoke(app, ["--config", str(config), "kafka", "start"])
    assert result.exit_code == 0, result.output
    assert f"already runs on {other_broker.bootstrap}" in result.output and "another process" in result.output
    assert other_broker.pid() is not None and broker_answers(other_broker.bootstrap)


def test_a_second_up_refuses_a_taken_edge_port_and_touches_no_broker(
    other_broker: LocalKafka, tmp_path: Path, listening: int
) -> None:
    config = config_for(other_broker, tmp_path, listening)
    result = CliRunner().invoke(app, ["--config", str(config), "up", "--no-worker"])
    assert result.exit_code == 1
    assert f"edge.port 127.0.0.1:{listening} is in use" in result.output
    assert other_broker.pid() is not None and broker_answers(other_broker.bootstrap)


def test_up_uses_a_running_broker_and_leaves_it_running_on_ctrl_c(
    other_broker: LocalKafka, tmp_path: Path
) -> None:
    edge_port = next(free_ports(1))
    config = config_for(other_broker, tmp_path, edge_port)
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "services.cli.main", "--config", str(config), "up", "--no-worker"],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while True:  # the edge answering is announced nowhere but on its port
            assert up.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{edge_port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0, log.read_text()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    output = log.read_text()
    assert "already runs" in output and "Kafka left running: another process started it" in output
    assert "Kafka stopped" not in output
    assert other_broker.pid() is not None and broker_answers(other_broker.bootstrap)
