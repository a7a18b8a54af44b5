"""The reliability report as JSON and as a table, through the `report` command; settings validation."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from pydantic import ValidationError
from rich.console import Console
from typer.testing import CliRunner

from services.outbound.config import APISettings
from services.reliability.alerts import AlertManager
from services.reliability.cli import app
from services.reliability.config import ServiceSettings
from services.reliability.registry import ServiceRegistry
from services.reliability.report import build_report, report_json, report_table

SERVICES = {
    "db": ServiceSettings(criticality="critical", sla={"availability": 0.5, "latency_ms": 100}),
    "app": ServiceSettings(depends_on=["db"]),
}


async def test_report_rows_carry_rates_percentiles_and_sla() -> None:
    registry = ServiceRegistry(SERVICES, alerts=AlertManager(sinks=[]), min_samples=2)
    for latency in (0.01, 0.02, 0.03, 0.5):
        await registry.record_call("db", True, latency)
    await registry.record_call("db", False, 0.04)
    registry.monitors["db"].record_fallback()
    rows = {row.service: row for row in build_report(registry)}
    db = rows["db"]
    assert (db.state, db.success_rate, db.fallback_rate) == ("degraded", 0.8, 0.2)
    assert (db.p50_ms, db.p95_ms, db.p99_ms) == (30, 500, 500)
    assert db.sla_compliant is False  # p95 500 ms against 100 ms
    assert db.dependents == ("app",) and rows["app"].depends_on == ("db",)
    assert rows["app"].state == "unknown" and rows["app"].success_rate is None
    data = json.loads(report_json(list(rows.values())))
    assert {s["service"] for s in data["services"]} == {"db", "app"}
    console = Console(record=True, width=200)
    console.print(report_table(list(rows.values())))
    text = console.export_text()
    assert "degraded" in text and "breached" in text and "80.0%" in text


def test_cli_report_json_without_probes() -> None:
    result = CliRunner().invoke(
        app, ["report", "--json", "--no-check"], obj=SimpleNamespace(services=SERVICES)
    )
    assert result.exit_code == 0, result.output
    assert [s["state"] for s in json.loads(result.output)["services"]] == ["unknown", "unknown"]


def test_cli_reads_settings_from_the_cli_state_object() -> None:
    state = SimpleNamespace(settings=SimpleNamespace(services=SERVICES))
    result = CliRunner().invoke(app, ["report", "--no-check"], obj=state)
    assert result.exit_code == 0 and "Service reliability" in result.output


def test_cli_impact() -> None:
    result = CliRunner().invoke(app, ["impact", "db"], obj=SimpleNamespace(services=SERVICES))
    assert result.exit_code == 0 and "critical among them:   -" in result.output and "app" in result.output
    missing = CliRunner().invoke(app, ["impact", "nope"], obj=SimpleNamespace(services=SERVICES))
    assert missing.exit_code == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"criticality": "urgent"}, "criticality"),
        ({"sla": {"availability": 1.5}}, "availability"),
        ({"fallback": [{"kind": "cache", "max_age": 0}]}, "max_age"),
        ({"fallback": [{"kind": "teleport"}]}, "kind"),
        ({"depends_on": ["a", "a"]}, "twice"),
        ({"health_check": {"url": "not a url"}}, "url"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_service_settings_reject_bad_values(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ServiceSettings.model_validate(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rate_limit": {"start": 50, "max": 10}}, "min <= start <= max"),
        ({"timeouts": {"attempt": 10, "overall": 5}}, "overall"),
        ({"retry": {"retryable_statuses": [99]}}, "invalid HTTP statuses"),
        ({"retry": {"strategy": "random"}}, "strategy"),
        ({"breaker": {"failure_rate": 0}}, "failure_rate"),
        ({"base_url": "ftp://x"}, "base_url"),
        ({"tiemouts": {}}, "tiemouts"),
    ],
)
def test_api_settings_reject_bad_values(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        APISettings.model_validate({"base_url": "http://a.test"} | data)


def test_settings_are_frozen() -> None:
    settings = APISettings(base_url="http://a.test")
    with pytest.raises(ValidationError):
        settings.batch_concurrency = 3  # type: ignore[misc]
