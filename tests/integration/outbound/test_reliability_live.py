"""Service reliability against real local HTTP servers: fallbacks in order, health checks, the CLI report."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from services.outbound.config import APISettings
from services.outbound.manager import APIManager
from services.reliability.alerts import Alert, AlertManager
from services.reliability.cli import app as services_cli
from services.reliability.config import ServiceSettings
from services.reliability.health import HealthChecker
from services.reliability.http import ServiceClient
from services.reliability.monitor import ServiceState
from services.reliability.registry import ServiceRegistry
from tests.support.http_server import Reply, ScriptedServer, serve_scripted, serve_scripted_in_thread


class RecordingSink:
    """An alert sink whose alerts can be awaited."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self._events: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def send(self, alert: Alert) -> None:
        self.alerts.append(alert)
        self._events[alert.kind].set()

    async def wait(self, kind: str, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            await self._events[kind].wait()

    @property
    def kinds(self) -> list[str]:
        return [a.kind for a in self.alerts]


def api(url: str) -> APISettings:
    return APISettings.model_validate(
        {
            "base_url": url,
            "retry": {"max_attempts": 1},
            "rate_limit": {"start": 1000, "max": 1000, "burst": 50},
        }
    )


@pytest.fixture
async def backup() -> AsyncIterator[ScriptedServer]:
    async with serve_scripted() as scripted:
        yield scripted


async def test_fallbacks_are_chosen_in_order(server: ScriptedServer, backup: ScriptedServer) -> None:
    services = {
        "rates": ServiceSettings.model_validate(
            {
                "api": "primary",
                "fallback": [
                    {"kind": "cache", "max_age": 60},
                    {"kind": "service", "service": "rates-backup"},
                    {"kind": "default", "value": {"rate": 1.0}},
                ],
            }
        ),
        "rates-backup": ServiceSettings(api="backup"),
    }
    server.route("/rates", Reply(body={"rate": 1.1}))
    backup.route("/rates", Reply(body={"rate": 1.2}))
    registry = ServiceRegistry(services, alerts=AlertManager(sinks=[]))
    async with APIManager({"primary": api(server.url), "backup": api(backup.url)}) as apis:
        client = ServiceClient(registry, apis)

        async def get(currency: str) -> tuple[Any, str, bool]:
            outcome = await client.request("rates", "GET", "/rates", params={"cur": currency})
            return outcome.value.json(), outcome.source, outcome.degraded

        assert await get("EUR") == ({"rate": 1.1}, "primary", False)
        server.route("/rates", Reply(status=503))
        assert await get("EUR") == ({"rate": 1.1}, "cache", True)
        assert await get("USD") == ({"rate": 1.2}, "service:rates-backup", False)  # nothing cached for USD
        backup.route("/rates", Reply(status=500))
        assert await get("USD") == ({"rate": 1.0}, "default", True)
        last = await client.request("rates", "GET", "/rates", params={"cur": "USD"})
        assert last.value.headers["x-breakwater-fallback"] == "default"
    assert server.calls("/rates") == 5 and backup.calls("/rates") == 3
    assert registry.monitors["rates"].snapshot().fallbacks == 4


async def test_health_checks_flip_state_and_alert_once_per_change(server: ScriptedServer) -> None:
    services = {
        "pay": ServiceSettings.model_validate(
            {
                "criticality": "critical",
                "health_check": {
                    "url": f"{server.url}/health",
                    "interval": 0.01,
                    "timeout": 0.5,
                    "failures_to_down": 2,
                },
            }
        ),
        "shop": ServiceSettings(depends_on=["pay"]),
    }
    sink = RecordingSink()
    registry = ServiceRegistry(services, alerts=AlertManager(sinks=[sink]))
    server.route("/health", Reply(status=503))
    async with HealthChecker(registry) as checker:
        await checker.start()
        await sink.wait("down")
        assert registry.state("pay") is ServiceState.DOWN
        assert sink.alerts[-1].impact == ("shop",)
        probes = server.calls("/health")
        await server.wait_for(lambda: server.calls("/health") >= probes + 5)
        # more failed probes: the SLA is breached once (from the fifth probe on), and "down" never repeats
        assert sink.kinds == ["degraded", "down", "sla_breached"]
        server.route("/health", Reply(status=200))
        await sink.wait("recovered")
        assert registry.state("pay") is ServiceState.HEALTHY
    assert sink.kinds == ["degraded", "down", "sla_breached", "recovered"]


async def test_health_probe_timeout_and_wrong_status_fail(server: ScriptedServer) -> None:
    services = {
        "slow": ServiceSettings.model_validate(
            {"health_check": {"url": f"{server.url}/slow", "timeout": 0.05}}
        ),
        "odd": ServiceSettings.model_validate(
            {"health_check": {"url": f"{server.url}/odd", "expected_status": [204]}}
        ),
        "fine": ServiceSettings.model_validate({"health_check": {"url": f"{server.url}/ok"}}),
    }
    server.route("/slow", Reply(delay=1))
    server.route("/odd", Reply(status=200))
    registry = ServiceRegistry(services, alerts=AlertManager(sinks=[]))
    async with HealthChecker(registry) as checker:
        results = await checker.check_all()
    assert {name: r.ok for name, r in results.items()} == {"fine": True, "odd": False, "slow": False}
    assert "Timeout" in results["slow"].detail and "expected [204]" in results["odd"].detail


def test_cli_report_probes_configured_services_once() -> None:
    with serve_scripted_in_thread() as server:
        server.route("/down", Reply(status=503))
        services = {
            "up": ServiceSettings.model_validate({"health_check": {"url": f"{server.url}/up"}}),
            "down": ServiceSettings.model_validate(
                {"health_check": {"url": f"{server.url}/down", "failures_to_down": 1}}
            ),
            "unprobed": ServiceSettings(),
        }
        result = CliRunner().invoke(
            services_cli, ["report", "--json", "--strict"], obj=SimpleNamespace(services=services)
        )
        table = CliRunner().invoke(services_cli, ["report"], obj=SimpleNamespace(services=services))
    assert result.exit_code == 1  # --strict: a service is down
    rows = {row["service"]: row for row in json.loads(result.output)["services"]}
    assert (rows["up"]["state"], rows["down"]["state"], rows["unprobed"]["state"]) == (
        "healthy",
        "down",
        "unknown",
    )
    assert rows["down"]["last_probe"] == "status 503, expected [200]"
    assert table.exit_code == 0 and "down" in table.output
