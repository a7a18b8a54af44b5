"""Service reliability: fallbacks, health checks, the dependency graph, reports and alerts."""

from services.reliability.alerts import (
    ALERTS_TOPIC,
    Alert,
    AlertKind,
    AlertManager,
    AlertSink,
    KafkaAlertSink,
    LogAlertSink,
)
from services.reliability.config import (
    CacheFallback,
    DefaultFallback,
    DegradedFallback,
    HealthCheckSettings,
    ServiceFallback,
    ServiceSettings,
    SLASettings,
)
from services.reliability.fallback import (
    Alternative,
    DefaultValue,
    Degraded,
    Fallback,
    FallbackChain,
    FallbackContext,
    FallbacksExhausted,
    LastGood,
    NoFallback,
    Outcome,
)
from services.reliability.graph import DependencyGraph, Impact, validate_dependency_graph
from services.reliability.health import HealthChecker
from services.reliability.http import ServiceClient, synthetic_response
from services.reliability.monitor import ProbeResult, ServiceMonitor, ServiceState
from services.reliability.registry import ServiceRegistry, ServiceUnavailable
from services.reliability.report import ServiceReport, build_report, report_json, report_table

__all__ = [
    "ALERTS_TOPIC",
    "Alert",
    "AlertKind",
    "AlertManager",
    "AlertSink",
    "Alternative",
    "CacheFallback",
    "DefaultFallback",
    "DefaultValue",
    "Degraded",
    "DegradedFallback",
    "DependencyGraph",
    "Fallback",
    "FallbackChain",
    "FallbackContext",
    "FallbacksExhausted",
    "HealthCheckSettings",
    "HealthChecker",
    "Impact",
    "KafkaAlertSink",
    "LastGood",
    "LogAlertSink",
    "NoFallback",
    "Outcome",
    "ProbeResult",
    "SLASettings",
    "ServiceClient",
    "ServiceFallback",
    "ServiceMonitor",
    "ServiceRegistry",
    "ServiceReport",
    "ServiceSettings",
    "ServiceState",
    "ServiceUnavailable",
    "build_report",
    "report_json",
    "report_table",
    "synthetic_response",
    "validate_dependency_graph",
]
