"""The Grafana dashboard charts only metrics that Breakwater exports, under the names it exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from services.config import TelemetrySettings
from services.telemetry import (
    PIPELINE_COUNTERS,
    export_counters,
    prometheus_text,
    setup_telemetry,
)

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "breakwater-dashboard.json"
NAME = re.compile(r"\bbreakwater_[a-z_]+")


def exported_names() -> set[str]:
    """Every metric name this process exposes at /metrics once each instrument saw a value."""
    telemetry = setup_telemetry(TelemetrySettings(), "dashboard-test")
    telemetry.edge.received.add(1, "stripe")
    telemetry.edge.accepted.add(1, "stripe")
    telemetry.edge.rejected.add(1, "stripe", "bad_signature")
    telemetry.edge.accept_latency.record(0.01, {"outcome": "accepted"})
    telemetry.end_to_end_latency.record(1.0)
    counts = {prefix + ("x" if label else ""): 1 for prefix, label, _ in PIPELINE_COUNTERS.values()}
    export_counters(telemetry.meter, lambda: counts)
    scraped = prometheus_text()[0].decode()
    names = {
        line.split("{", 1)[0].split(" ", 1)[0]
        for line in scraped.splitlines()
        if line.startswith("breakwater")
    }
    return names | {
        "breakwater_consumer_lag"
    }  # the operator API's gauge, tested in tests/integration/operators


def test_every_dashboard_query_uses_an_exported_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in NAME.findall(target["expr"])
    }
    assert used, "the dashboard queries nothing"
    assert used <= exported_names(), sorted(used - exported_names())


def test_the_name_check_catches_a_typo() -> None:
    assert "breakwater_pipeline_deliverd_total" not in exported_names()
