"""Every ``breakwater`` command reports an error one way: ``error: <message>`` on stderr, exit 1 or 2."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from typer.testing import CliRunner

from services.cli.errors import ExitCode, fail
from services.cli.main import app

REPO = Path(__file__).resolve().parents[2]
CLI_MODULES = [*sorted((REPO / "services/cli").glob("*.py")), REPO / "services/reliability/cli.py"]


def test_fail_prints_one_line_to_stderr_and_exits_with_its_kind() -> None:
    tiny = typer.Typer()

    @tiny.command()
    def go(usage: bool = False) -> None:
        try:
            raise ValueError("the cause")
        except ValueError as exc:
            fail(f"it broke: {exc}", ExitCode.USAGE if usage else ExitCode.FAILED)

    for flag, code in (([], 1), (["--usage"], 2)):
        result = CliRunner().invoke(tiny, flag)
        assert (result.exit_code, result.stderr, result.stdout) == (code, "error: it broke: the cause\n", "")


def test_a_bad_setting_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[edge]\nport = 70000\n")
    result = CliRunner().invoke(app, ["--config", str(config), "topics", "list"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "edge.port" in result.stderr
    assert "Traceback" not in result.output


def test_no_cli_module_reports_an_error_its_own_way() -> None:
    """``error:`` is written, and exit codes are chosen, in services/cli/errors.py alone."""
    own_way = re.compile(r"""["']error:|\[red\]error|typer\.Exit\(\d""")
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in CLI_MODULES
        if path.name != "errors.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if own_way.search(line)
    ]
    assert len(CLI_MODULES) > 5, "the CLI modules were not found"
    assert found == []


def test_a_command_facing_a_cluster_that_refuses_answers_one_line_not_a_traceback(tmp_path: Path) -> None:
    """``topics ensure`` against a port no broker listens on: exit 1, ``error: <Class>: …``, nothing else."""
    import socket

    with socket.socket() as probe:  # a free port, closed again: nothing answers there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "bw.toml"
    config.write_text(f'[kafka]\nbootstrap = "127.0.0.1:{port}"\nrequest_timeout_ms = 1000\n')
    result = CliRunner().invoke(app, ["--config", str(config), "topics", "ensure"])
    assert result.exit_code == ExitCode.FAILED, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and re.match(r"error: \w+Error: ", lines[0]), result.output
