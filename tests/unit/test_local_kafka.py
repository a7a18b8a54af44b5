"""The local broker's files and the CLI's answers, without starting a JVM."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli.main import app
from services.kafka.local import LocalKafka
from tests.support.http_server import Reply, always, serve_scripted_in_thread

LOCAL_CONFIG = Path(__file__).parents[2] / "deploy" / "local" / "breakwater.toml"


def test_server_properties_describe_one_kraft_node(tmp_path: Path) -> None:
    broker = LocalKafka(libs=tmp_path, home=tmp_path / "home", port=19092, controller_port=19093)
    props = dict(
        line.split("=", 1) for line in broker._properties().splitlines() if line and not line.startswith("#")
    )
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["log.dirs"] == str(tmp_path / "home" / "data")
    assert props["auto.create.topics.enable"] == "false"
    assert props["transaction.state.log.replication.factor"] == "1"


def test_data_dir_and_log_file_can_live_elsewhere(tmp_path: Path) -> None:
    broker = LocalKafka(libs=tmp_path, home=tmp_path / "h", data=tmp_path / "d", log=tmp_path / "l" / "k.log")
    assert broker.data_dir == tmp_path / "d"
    assert broker.log_file == tmp_path / "l" / "k.log"
    assert f"log.dirs={tmp_path / 'd'}" in broker._properties()


def test_a_stale_pid_file_is_not_a_running_broker(tmp_path: Path) -> None:
    broker = LocalKafka(libs=tmp_path, home=tmp_path)
    broker.pid_file.write_text("999999")
    assert broker.pid() is None
    assert broker.stop() is False


@pytest.mark.parametrize("command", ["start", "stop"])
def test_external_cluster_starts_nothing(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BREAKWATER_KAFKA_BOOTSTRAP", "kafka.example:9092")
    result = CliRunner().invoke(app, ["kafka", command])
    assert result.exit_code == 0, result.output
    assert "nothing is started" in result.output


def test_every_command_has_help() -> None:
    runner = CliRunner()
    for args in (
        [],
        ["kafka"],
        ["kafka", "start"],
        ["topics", "ensure"],
        ["edge"],
        ["worker"],
        ["up"],
        ["sample"],
        ["schemas", "check"],
        ["services", "report"],
        ["dlq", "list"],
        ["dlq", "replay"],
        ["dlq", "discard"],
        ["operators", "serve"],
        ["stats"],
    ):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)
        assert "Usage" in result.output


def test_topics_list_shows_each_topics_record_schema_without_a_broker() -> None:
    result = CliRunner().invoke(app, ["--config", str(LOCAL_CONFIG), "topics", "list"])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines() if line.strip()]
    header, rows = lines[0], {line[0]: line[3] for line in lines[2:]}  # one line a topic at 80 columns
    assert "record" in header and "schema" in header
    assert rows["webhooks.inbound"] == "webhook-envelope" and rows["webhooks.dlq"] == "dead-letter"


def test_bad_configuration_exits_2_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BREAKWATER_EDGE__PORT", "99999")
    result = CliRunner().invoke(app, ["topics", "list"])
    assert result.exit_code == 2
    assert "edge.port" in result.output


# Issue #13, item 12b: command-line options are validated like settings, naming the option.
@pytest.mark.parametrize(
    "args",
    [
        ["edge", "--port", "99999"],
        ["edge", "--port", "0"],
        ["edge", "--port", "-1"],
        ["operators", "serve", "--port", "65536"],
    ],
)
def test_ports_outside_1_to_65535_are_refused_naming_the_option(args: list[str]) -> None:
    result = CliRunner().invoke(app, ["--config", str(LOCAL_CONFIG), *args])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--port'" in result.output


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "ftp://127.0.0.1:8000", "http://"])
def test_sample_refuses_a_url_it_cannot_post_to(url: str) -> None:
    result = CliRunner().invoke(app, ["--config", str(LOCAL_CONFIG), "sample", "stripe", "--url", url])
    assert result.exit_code == 2, result.output
    assert "--url" in result.output and "Traceback" not in result.output


# Issue #13, item 12c: an answer that is not JSON (a proxy's HTML 503) is shown, not a traceback.
@pytest.mark.parametrize(
    ("reply", "shown"),
    [
        (
            Reply(
                503,
                "<html><body><h1>503 Service Unavailable</h1>\nNo server is available.\n</body></html>\n",
                {"content-type": "text/html"},
            ),
            "503 <html><body><h1>503 Service Unavailable</h1>",
        ),
        (Reply(502, b""), "502 (empty body)"),
        (Reply(500, b"\xff\xfe not text"), "500 \ufffd\ufffd not text"),
        (Reply(202, {"status": "accepted"}), '202 {"status": "accepted"}'),
    ],
)
def test_sample_shows_the_status_and_the_first_line_of_any_answer(reply: Reply, shown: str) -> None:
    with serve_scripted_in_thread(always(reply)) as server:
        result = CliRunner().invoke(
            app, ["--config", str(LOCAL_CONFIG), "sample", "stripe", "--url", server.url]
        )
    assert result.output.strip() == shown, result.output
    assert result.exit_code == (0 if reply.status == 202 else 1)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
