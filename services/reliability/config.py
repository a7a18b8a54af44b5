"""Settings for the services Breakwater depends on: how much they matter, what they need, what they owe.

Frozen pydantic sections with ``extra="forbid"``, like :mod:`services.config`::

    [services.payments]
    criticality = "critical"
    api = "payments"                      # an entry of [apis], used for calls and alternatives
    depends_on = ["ledger"]
    sla = { availability = 0.999, latency_ms = 300, percentile = 95 }
    health_check = { url = "https://pay.example.com/health", interval = 10, timeout = 2 }
    fallback = [
        { kind = "cache", max_age = 300 },
        { kind = "service", service = "payments-backup" },
        { kind = "default", value = { status = "queued" } },
    ]

Cross-service rules (known names, no cycles) are checked by :func:`validate_dependency_graph`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from services.reliability.graph import CRITICALITY_WEIGHT, Criticality, validate_dependency_graph


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SLASettings(_Section):
    """What the service promises: the share of calls that succeed, and a latency at a percentile."""

    availability: float = Field(default=0.99, gt=0, le=1)
    latency_ms: float = Field(default=1000.0, gt=0)
    percentile: Literal[50, 95, 99] = 95


class HealthCheckSettings(_Section):
    """An HTTP probe every ``interval`` seconds; ``failures_to_down`` misses in a row mark it down."""

    url: HttpUrl
    method: Literal["GET", "HEAD", "POST"] = "GET"
    expected_status: frozenset[int] = frozenset({200})
    interval: float = Field(default=10.0, gt=0)
    timeout: float = Field(default=2.0, gt=0)
    failures_to_down: int = Field(default=3, ge=1)
    successes_to_up: int = Field(default=1, ge=1)
    degraded_latency_ms: float | None = Field(default=None, gt=0)
    """A probe slower than this marks the service degraded (up, but not well)."""


class CacheFallback(_Section):
    """The last good answer for the same key, if younger than ``max_age`` seconds."""

    kind: Literal["cache"] = "cache"
    max_age: float = Field(default=300.0, gt=0)
    max_entries: int = Field(default=1024, ge=1)


class DefaultFallback(_Section):
    """A fixed value, e.g. an empty list or ``{"status": "unknown"}``."""

    kind: Literal["default"] = "default"
    value: Any = None


class ServiceFallback(_Section):
    """The same call made to another configured service (which should have an ``api``)."""

    kind: Literal["service"] = "service"
    service: str


class DegradedFallback(_Section):
    """A reduced answer: code may register a builder for it; ``value`` is used otherwise."""

    kind: Literal["degraded"] = "degraded"
    value: Any = None


FallbackSettings = Annotated[
    CacheFallback | DefaultFallback | ServiceFallback | DegradedFallback, Field(discriminator="kind")
]


class ServiceSettings(_Section):
    """One service: its weight, its dependencies, its SLA, how to probe it, what to use instead."""

    criticality: Criticality = "medium"
    description: str = ""
    api: str | None = None
    """The entry of ``apis`` through which the service is called."""
    depends_on: list[str] = Field(default_factory=list)
    sla: SLASettings = Field(default_factory=SLASettings)
    health_check: HealthCheckSettings | None = None
    fallback: list[FallbackSettings] = Field(default_factory=list)
    """Tried in order when a call fails; the first that yields an answer wins."""
    degraded_failure_rate: float = Field(default=0.1, gt=0, le=1)
    """Share of failed calls (over the recent window) above which the service counts as degraded."""
    down_failure_rate: float = Field(default=0.5, gt=0, le=1)

    @model_validator(mode="after")
    def _rates_ordered(self) -> ServiceSettings:
        if self.degraded_failure_rate > self.down_failure_rate:
            raise ValueError("degraded_failure_rate must not exceed down_failure_rate")
        if len(set(self.depends_on)) != len(self.depends_on):
            raise ValueError(f"depends_on lists a service twice: {self.depends_on}")
        return self


__all__ = [
    "CRITICALITY_WEIGHT",
    "CacheFallback",
    "Criticality",
    "DefaultFallback",
    "DegradedFallback",
    "FallbackSettings",
    "HealthCheckSettings",
    "SLASettings",
    "ServiceFallback",
    "ServiceSettings",
    "validate_dependency_graph",
]
