"""``breakwater flood``'s options, wired to the runner without starting anything."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from services.cli.main import app
from services.flood import runner
from services.flood.runner import FloodOptions
from services.flood.stack import StackError


@pytest.mark.parametrize(
    ("variable", "value"),
    [("BREAKWATER_KAFKA__BOOTSTRAP", "nested:9092"), ("BREAKWATER_KAFKA_BOOTSTRAP", "short:9092")],
)
def test_either_bootstrap_spelling_points_the_flood_at_an_existing_cluster(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[FloodOptions] = []

    def refuse(options: FloodOptions, console: Any) -> dict[str, Any]:
        seen.append(options)
        raise StackError("stopped here by the test")

    monkeypatch.setattr(runner, "run_flood", refuse)  # imported when the command runs
    monkeypatch.delenv("BREAKWATER_KAFKA__BOOTSTRAP", raising=False)
    monkeypatch.delenv("BREAKWATER_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv(variable, value)
    result = CliRunner().invoke(app, ["flood", "--scale", "0.01"])
    assert result.exit_code == 1 and "stopped here by the test" in result.output
    assert [o.bootstrap for o in seen] == [value]
