"""Which service needs which, and what breaks when one fails.

Edges point from a service to what it depends on (``payments -> ledger``); a service's *dependents*
are the services that break with it. Cycles are rejected at start (``validate_dependency_graph`` in
services/reliability/config.py): a cycle means no service in it can ever come up first, and impact
analysis would never end.

Cascade risk of a failure is the criticality-weighted share of all *other* services that depend on the
failed one, directly or not: 0 when nothing depends on it, 1 when everything does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from services.reliability.config import Criticality, ServiceNode, validate_dependency_graph

CRITICALITY_WEIGHT: dict[Criticality, int] = {"critical": 4, "high": 3, "medium": 2, "low": 1}


@dataclass(frozen=True)
class Impact:
    """What a failure of ``service`` takes down with it."""

    service: str
    direct: tuple[str, ...]
    transitive: tuple[str, ...]
    """Every dependent, direct or not, sorted."""
    critical: tuple[str, ...]
    """Dependents whose criticality is ``critical``."""
    cascade_risk: float
    risk_level: Literal["none", "low", "medium", "high"]


class DependencyGraph:
    """The validated graph of configured services.

    >>> graph = DependencyGraph(settings.services)  # doctest: +SKIP
    >>> graph.impact("ledger").transitive  # doctest: +SKIP
    ('checkout', 'payments')
    """

    def __init__(self, services: Mapping[str, ServiceNode]) -> None:
        validate_dependency_graph(services)
        self._services = dict(services)
        self._dependents: dict[str, set[str]] = {name: set() for name in services}
        for name, service in services.items():
            for dependency in service.depends_on:
                self._dependents[dependency].add(name)

    def dependencies(self, name: str) -> tuple[str, ...]:
        return tuple(sorted(self._services[name].depends_on))

    def dependents(self, name: str) -> tuple[str, ...]:
        """Services that call ``name`` directly."""
        return tuple(sorted(self._dependents[name]))

    def transitive_dependents(self, name: str) -> tuple[str, ...]:
        """Services that fail, directly or through others, when ``name`` fails."""
        seen: set[str] = set()
        frontier = [name]
        while frontier:
            for dependent in self._dependents[frontier.pop()]:
                if dependent not in seen:
                    seen.add(dependent)
                    frontier.append(dependent)
        return tuple(sorted(seen))

    def transitive_dependencies(self, name: str) -> tuple[str, ...]:
        seen: set[str] = set()
        frontier = [name]
        while frontier:
            for dependency in self._services[frontier.pop()].depends_on:
                if dependency not in seen:
                    seen.add(dependency)
                    frontier.append(dependency)
        return tuple(sorted(seen))

    def cascade_risk(self, name: str) -> float:
        others = [n for n in self._services if n != name]
        total = sum(CRITICALITY_WEIGHT[self._services[n].criticality] for n in others)
        if not total:
            return 0.0
        hit = sum(CRITICALITY_WEIGHT[self._services[n].criticality] for n in self.transitive_dependents(name))
        return hit / total

    def impact(self, name: str) -> Impact:
        transitive = self.transitive_dependents(name)
        risk = self.cascade_risk(name)
        critical = tuple(n for n in transitive if self._services[n].criticality == "critical")
        level: Literal["none", "low", "medium", "high"]
        if not transitive:
            level = "none"
        elif critical or risk >= 0.5:
            level = "high"
        elif risk >= 0.2:
            level = "medium"
        else:
            level = "low"
        return Impact(name, self.dependents(name), transitive, critical, risk, level)

    def startup_order(self) -> tuple[str, ...]:
        """Dependencies before dependents (a topological order, ties by name)."""
        done: list[str] = []
        placed: set[str] = set()
        remaining = sorted(self._services)
        while remaining:
            ready = [n for n in remaining if set(self._services[n].depends_on) <= placed]
            done.extend(ready)
            placed.update(ready)
            remaining = [n for n in remaining if n not in placed]
        return tuple(done)
