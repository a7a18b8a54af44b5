"""Settings for the services Breakwater depends on: how much they matter, what they need, what they owe.

Sections on :class:`~services.settings_base.Section`, like :mod:`services.config`. This module
imports only pydantic and that base, so the root settings validate ``[services]`` (the graph's rules
too) without importing the reliability runtime::

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

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Protocol

from pydantic import Field, HttpUrl, model_validator

from services.settings_base import Section

Criticality = Literal["critical", "high", "medium", "low"]


class SLASettings(Section):
    """What the service promises: the share of calls that succeed, and a latency at a percentile."""

    availability: float = Field(default=0.99, gt=0, le=1)
    latency_ms: float = Field(default=1000.0, gt=0)
    percentile: Literal[50, 95, 99] = 95


class HealthCheckSettings(Section):
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


class CacheFallback(Section):
    """The last good answer for the same key, if younger than ``max_age`` seconds."""

    kind: Literal["cache"] = "cache"
    max_age: float = Field(default=300.0, gt=0)
    max_entries: int = Field(default=1024, ge=1)


class DefaultFallback(Section):
    """A fixed value, e.g. an empty list or ``{"status": "unknown"}``."""

    kind: Literal["default"] = "default"
    value: Any = None


class ServiceFallback(Section):
    """The same call made to another configured service (which should have an ``api``)."""

    kind: Literal["service"] = "service"
    service: str


class DegradedFallback(Section):
    """A reduced answer: code may register a builder for it; ``value`` is used otherwise."""

    kind: Literal["degraded"] = "degraded"
    value: Any = None


FallbackSettings = Annotated[
    CacheFallback | DefaultFallback | ServiceFallback | DegradedFallback, Field(discriminator="kind")
]


class ServiceSettings(Section):
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


class ServiceNode(Protocol):
    """What the graph reads from a service's settings."""

    @property
    def criticality(self) -> Criticality: ...

    @property
    def depends_on(self) -> list[str]: ...


def _find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle as ``[a, b, ..., a]``, or ``None``. Iterative DFS, so deep graphs do not recurse."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(edges, white)
    for root in sorted(edges):
        if colour[root] != white:
            continue
        path: list[str] = [root]
        stack = [iter(sorted(edges[root]))]
        colour[root] = grey
        while stack:
            child = next(stack[-1], None)
            if child is None:
                colour[path.pop()] = black
                stack.pop()
            elif colour.get(child, black) == grey:
                return [*path[path.index(child) :], child]
            elif colour.get(child) == white:
                colour[child] = grey
                path.append(child)
                stack.append(iter(sorted(edges[child])))
    return None


def validate_dependency_graph(services: Mapping[str, ServiceNode]) -> None:
    """Raise :class:`ValueError` for an unknown dependency or fallback service, or a cycle (named).

    >>> validate_dependency_graph({"a": S(depends_on=["b"]), "b": S(depends_on=["a"])})  # doctest: +SKIP
    ValueError: services depend on each other in a cycle: a -> b -> a
    """
    for name, service in services.items():
        unknown = sorted(set(service.depends_on) - set(services))
        if unknown:
            raise ValueError(f"service {name!r} depends on unknown services {unknown}")
        for fallback in getattr(service, "fallback", []):
            other = getattr(fallback, "service", None)
            if other is not None and other not in services:
                raise ValueError(f"service {name!r} falls back to unknown service {other!r}")
            if other == name:
                raise ValueError(f"service {name!r} falls back to itself")
    cycle = _find_cycle({name: service.depends_on for name, service in services.items()})
    if cycle:
        raise ValueError("services depend on each other in a cycle: " + " -> ".join(cycle))


__all__ = [
    "CacheFallback",
    "Criticality",
    "DefaultFallback",
    "DegradedFallback",
    "FallbackSettings",
    "HealthCheckSettings",
    "SLASettings",
    "ServiceFallback",
    "ServiceNode",
    "ServiceSettings",
    "validate_dependency_graph",
]
