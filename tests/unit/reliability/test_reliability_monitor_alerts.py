"""Service state from probes, calls and the breaker; alerts once per change, to every sink."""

from __future__ import annotations

import json
import logging

import pytest

from services.outbound.breaker import BreakerState
from services.reliability.alerts import Alert, AlertManager, LogAlertSink
from services.reliability.config import ServiceSettings
from services.reliability.monitor import ProbeResult, ServiceMonitor, ServiceState, percentile
from services.reliability.registry import ServiceRegistry

OK = ProbeResult(ok=True, latency=0.01, status=200)
FAIL = ProbeResult(ok=False, latency=0.01, detail="status 503")


def settings(**kw: object) -> ServiceSettings:
    base = {
        "health_check": {
            "url": "http://h.test/",
            "failures_to_down": 2,
            "successes_to_up": 2,
            "degraded_latency_ms": 100,
        },
        "sla": {"availability": 0.9, "latency_ms": 50, "percentile": 95},
    }
    return ServiceSettings.model_validate(base | kw)


def test_percentile_nearest_rank() -> None:
    samples = [float(n) for n in range(1, 101)]
    assert (percentile(samples, 50), percentile(samples, 95), percentile(samples, 99)) == (50, 95, 99)
    assert percentile([], 50) is None and percentile([7.0], 99) == 7


def test_probes_drive_state_with_thresholds_both_ways() -> None:
    monitor = ServiceMonitor("a", settings())
    assert monitor.state() is ServiceState.UNKNOWN
    monitor.record_probe(OK)
    assert monitor.state() is ServiceState.HEALTHY
    monitor.record_probe(FAIL)
    assert monitor.state() is ServiceState.HEALTHY  # one miss is not down yet
    monitor.record_probe(FAIL)
    assert monitor.state() is ServiceState.DOWN and monitor.health_down
    monitor.record_probe(OK)
    assert monitor.state() is ServiceState.DOWN  # needs two good probes to come back
    monitor.record_probe(OK)
    assert monitor.health_down is False


def test_slow_probe_means_degraded() -> None:
    monitor = ServiceMonitor("a", settings())
    monitor.record_probe(ProbeResult(ok=True, latency=0.2, status=200))
    assert monitor.state() is ServiceState.DEGRADED


def test_call_failure_rate_and_breaker_drive_state() -> None:
    monitor = ServiceMonitor("a", settings(degraded_failure_rate=0.2, down_failure_rate=0.6), window=10)
    for ok in [True] * 8 + [False] * 2:
        monitor.record_call(ok, 0.01)
    assert monitor.state() is ServiceState.DEGRADED
    for _ in range(4):
        monitor.record_call(False, 0.01)
    assert monitor.success_rate() == pytest.approx(0.4)  # the window forgot the oldest four successes
    assert monitor.state() is ServiceState.DOWN
    for _ in range(10):
        monitor.record_call(True, 0.01)
    assert monitor.state() is ServiceState.HEALTHY
    monitor.breaker_open = True
    assert monitor.state() is ServiceState.DOWN


def test_sla_compliance_needs_availability_and_latency() -> None:
    monitor = ServiceMonitor("a", settings(), min_samples=5)
    for _ in range(4):
        monitor.record_call(True, 0.01)
    assert monitor.sla_compliant() is None  # too few to judge
    monitor.record_call(True, 0.01)
    assert monitor.sla_compliant() is True
    for _ in range(5):
        monitor.record_call(True, 0.2)
    assert monitor.sla_compliant() is False  # p95 200 ms > 50 ms


def test_alerts_once_per_change_and_sla_once_per_breach() -> None:
    alerts = AlertManager(sinks=[])
    kinds = []
    sequence = [
        (ServiceState.HEALTHY, True),
        (ServiceState.DOWN, None),
        (ServiceState.DOWN, False),
        (ServiceState.DOWN, False),
        (ServiceState.DEGRADED, False),
        (ServiceState.HEALTHY, True),
        (ServiceState.HEALTHY, False),
    ]
    for state, sla in sequence:
        kinds.append([a.kind for a in alerts.decide("a", state, sla)])
    assert kinds == [[], ["down"], ["sla_breached"], [], ["degraded"], ["recovered"], ["sla_breached"]]


async def test_registry_alerts_with_impact_and_breaker_listener() -> None:
    services = {
        "db": ServiceSettings(api="db-api", criticality="critical"),
        "app": ServiceSettings(depends_on=["db"]),
    }
    registry = ServiceRegistry(services, alerts=AlertManager(sinks=[]), min_samples=1)
    registry.breaker_listener()("db-api", BreakerState.CLOSED, BreakerState.OPEN)
    alerts = await registry.record_call("db", False, 0.01)
    assert [(a.kind, a.impact) for a in alerts] == [("down", ("app",))]
    assert "affects app" in alerts[0].message
    registry.breaker_listener()("db-api", BreakerState.HALF_OPEN, BreakerState.CLOSED)
    for _ in range(10):
        await registry.record_call("db", True, 0.01)  # 1 failure in 11 calls: below degraded (10%)
    assert registry.alerts.sent[-1].kind == "recovered"


class Broken:
    async def send(self, alert: Alert) -> None:
        raise ConnectionError("sink unreachable")


async def test_log_sink_levels_and_a_broken_sink_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.alerts")
    manager = AlertManager(sinks=[Broken(), LogAlertSink(logger)])
    with caplog.at_level(logging.INFO):
        await manager.observe("pay", ServiceState.DOWN, None, criticality="critical")
        await manager.observe("pay", ServiceState.HEALTHY, None, criticality="critical")
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert ("test.alerts", logging.ERROR, "alert down: pay (critical) is down, was unknown") in records
    assert ("test.alerts", logging.INFO, "alert recovered: pay (critical) is healthy, was down") in records
    assert any("sink Broken failed" in r.getMessage() for r in caplog.records)


def test_alert_json_is_self_describing() -> None:
    alert = Alert("down", "pay", ServiceState.DOWN, ServiceState.HEALTHY, "critical", "pay is down", ("app",))
    data = json.loads(alert.to_json())
    assert data | {"at": 0} == {
        "kind": "down",
        "service": "pay",
        "state": "down",
        "previous": "healthy",
        "criticality": "critical",
        "message": "pay is down",
        "impact": ["app"],
        "at": 0,
    }
