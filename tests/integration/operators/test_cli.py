"""``breakwater dlq ...`` and ``stats`` through typer's CliRunner, against the same data as the API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import typer
from pydantic import SecretStr
from typer.testing import CliRunner

from services.cli.dlq import dlq_app, operators_app, stats
from services.operators.api import create_operator_app
from services.operators.config import OperatorSettings
from tests.integration.operators.seed import TOKEN, Seeded, seed

runner = CliRunner()


@pytest.fixture
def world(kafka_bootstrap: str, unique: Callable[[str], str]) -> Seeded:
    return asyncio.run(seed(kafka_bootstrap, unique("cli")))


def cli(world: Seeded, *args: str, app: typer.Typer = dlq_app) -> Any:
    result = runner.invoke(app, list(args), obj=SimpleNamespace(settings=world.settings))
    return result


def summary(output: str) -> dict[str, int]:
    """The rows of the outcome table that replay and discard print last."""
    rows = [line.strip("│ ").split("│") for line in output.splitlines() if line.startswith("│")]
    return {name.strip(): int(count) for name, count in rows}


def api_get(world: Seeded, path: str, params: dict[str, str]) -> Any:
    async def go() -> Any:
        app = create_operator_app(world.settings, OperatorSettings(token=SecretStr(TOKEN)))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://operators") as http:
            response = await http.get(path, params=params, headers={"Authorization": f"Bearer {TOKEN}"})
            assert response.status_code == 200
            return response.json()

    return asyncio.run(go())


def test_list_show_and_counts_match_the_api(world: Seeded) -> None:
    listed = cli(
        world, "list", "--provider", "stripe", "--error", "http_500", "--since", world.hours(1), "--json"
    )
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.output)
    assert data["count"] == 5
    params = {"provider": "stripe", "error_class": "http_500", "since": world.hours(1), "limit": "50"}
    assert data == api_get(world, "/dlq", params)

    table = cli(world, "list")
    assert table.exit_code == 0 and "dead letters (14)" in table.output

    target = world.dead[3]
    shown = cli(world, "show", target.id[:13], "--json")
    assert shown.exit_code == 0 and json.loads(shown.output) == api_get(world, f"/dlq/{target.id}", {})
    panels = cli(world, "show", target.id)
    assert panels.exit_code == 0 and "evt_stripe_3" in panels.output
    assert cli(world, "show", "nope").exit_code == 1

    counts = cli(world, "counts", "--json")
    assert json.loads(counts.output) == {"http_500": 9, "http_400": 3, "timeout": 2}


def test_replay_and_discard_with_summaries(world: Seeded) -> None:
    dry = cli(world, "replay", "--provider", "github", "--dry-run")
    assert dry.exit_code == 0
    assert summary(dry.output) == {"would be replayed": 4, "skipped (already replayed)": 0, "failed": 0}
    done = cli(world, "replay", "--provider", "github", "--by", "dave")
    assert done.exit_code == 0, done.output
    assert summary(done.output) == {"replayed": 4, "skipped (already replayed)": 0, "failed": 0}
    again = cli(world, "replay", "--provider", "github")
    assert again.exit_code == 0
    assert summary(again.output) == {"replayed": 0, "skipped (already replayed)": 4, "failed": 0}
    records = asyncio.run(world.read(world.ops.topics.ready("github"))).records
    assert len(records) == 4
    assert {dict(r.headers)["bw-replayed-by"] for r in records} == {b"dave"}

    assert cli(world, "replay").exit_code == 2  # no ids, no filters: refused
    assert cli(world, "replay", "--since", "yesterday").exit_code == 2

    target = world.dead[0]
    discarded = cli(world, "discard", target.id, "--notes", "test data", "--by", "erin")
    assert discarded.exit_code == 0, discarded.output
    listed = json.loads(cli(world, "list", "--json", "--limit", "100").output)
    assert listed["count"] == 13 and target.id not in {item["id"] for item in listed["items"]}
    shown = json.loads(cli(world, "show", target.id, "--json").output)
    assert shown["mark"]["state"] == "discarded" and shown["mark"]["by"] == "erin"


def test_stats_command(world: Seeded) -> None:
    app = typer.Typer()
    app.command()(stats)
    app.command("noop")(lambda: None)  # two commands keep "stats" a subcommand
    result = runner.invoke(
        app, ["stats", "--json", "--since", world.hours(-1)], obj=SimpleNamespace(settings=world.settings)
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["dead_by_provider"] == {"github": 4, "stripe": 10} and data["lag_total"] == 0
    table = runner.invoke(app, ["stats"], obj=SimpleNamespace(settings=world.settings))
    assert table.exit_code == 0 and "health: 100/100" in table.output


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["list", "--help"],
        ["show", "--help"],
        ["counts", "--help"],
        ["replay", "--help"],
        ["discard", "--help"],
    ],
)
def test_help(args: list[str]) -> None:
    assert runner.invoke(dlq_app, args).exit_code == 0
    assert runner.invoke(operators_app, ["serve", "--help"]).exit_code == 0
