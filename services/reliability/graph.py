"""Which service needs which, and what breaks when one fails.

Edges point from a service to what it depends on (``payments -> ledger``); a service's *dependents*
are the services that break with it. Cycles are rejected at start: a cycle means no service in it can
ever come up first, and impact analysis would never end.

Cascade risk of a failure is the criticality-weighted share of all *other* services that depend on the
failed one, directly or not: 0 when nothing depends on it, 1 when everything does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Criticality = Literal["critical", "high", "medium", "low"]
CRITICALITY_WEIGHT: dict[Criticality, int] = {"critical": 4, "high": 3, "medium": 2, "low": 1}


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
