"""The reliability report: one row per service, as JSON for machines and a rich table for people."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from rich.table import Table

from services.reliability.monitor import ServiceState
from services.reliability.registry import ServiceRegistry


@dataclass(frozen=True)
class ServiceReport:
    service: str
    criticality: str
    state: str
    success_rate: float | None
    fallback_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    sla_availability: float
    sla_latency_ms: float
    sla_percentile: int
    sla_compliant: bool | None
    observations: int
    calls: int
    fallbacks: int
    depends_on: tuple[str, ...]
    dependents: tuple[str, ...]
    cascade_risk: float
    last_probe: str | None


def build_report(registry: ServiceRegistry) -> list[ServiceReport]:
    """A row per service, sorted by name."""
    rows = []
    for name in sorted(registry.settings):
        settings, snap = registry.settings[name], registry.monitors[name].snapshot()
        probe = snap.last_probe
        rows.append(
            ServiceReport(
                service=name,
                criticality=settings.criticality,
                state=snap.state.value,
                success_rate=snap.success_rate,
                fallback_rate=snap.fallback_rate,
                p50_ms=snap.p50_ms,
                p95_ms=snap.p95_ms,
                p99_ms=snap.p99_ms,
                sla_availability=settings.sla.availability,
                sla_latency_ms=settings.sla.latency_ms,
                sla_percentile=settings.sla.percentile,
                sla_compliant=snap.sla_compliant,
                observations=snap.observations,
                calls=snap.calls,
                fallbacks=snap.fallbacks,
                depends_on=registry.graph.dependencies(name),
                dependents=registry.graph.transitive_dependents(name),
                cascade_risk=round(registry.graph.cascade_risk(name), 4),
                last_probe=None if probe is None else ("ok" if probe.ok else probe.detail or "failed"),
            )
        )
    return rows


def report_dicts(rows: list[ServiceReport]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]


def report_json(rows: list[ServiceReport]) -> str:
    return json.dumps({"services": report_dicts(rows)}, indent=2, sort_keys=True)


_STATE_STYLE = {
    ServiceState.HEALTHY.value: "green",
    ServiceState.DEGRADED.value: "yellow",
    ServiceState.DOWN.value: "bold red",
    ServiceState.UNKNOWN.value: "dim",
}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def report_table(rows: list[ServiceReport]) -> Table:
    table = Table(title="Service reliability")
    for column, justify in [
        ("service", "left"),
        ("criticality", "left"),
        ("state", "left"),
        ("success", "right"),
        ("fallback", "right"),
        ("p50 ms", "right"),
        ("p95 ms", "right"),
        ("p99 ms", "right"),
        ("SLA", "left"),
        ("dependents", "left"),
        ("last probe", "left"),
    ]:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        sla = {True: "[green]met[/]", False: "[red]breached[/]", None: "[dim]n/a[/]"}[row.sla_compliant]
        target = f"{row.sla_availability * 100:g}% / p{row.sla_percentile} {row.sla_latency_ms:g}ms"
        table.add_row(
            row.service,
            row.criticality,
            f"[{_STATE_STYLE[row.state]}]{row.state}[/]",
            _pct(row.success_rate),
            _pct(row.fallback_rate),
            _ms(row.p50_ms),
            _ms(row.p95_ms),
            _ms(row.p99_ms),
            f"{sla} ({target})",
            ", ".join(row.dependents) or "-",
            row.last_probe or "-",
        )
    return table
