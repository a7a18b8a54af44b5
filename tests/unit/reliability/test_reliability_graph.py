"""The dependency graph: validation at start, dependents, impact and cascade risk."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.reliability.config import ServiceSettings, validate_dependency_graph
from services.reliability.graph import DependencyGraph


def svc(*depends_on: str, criticality: str = "medium", **kw: object) -> ServiceSettings:
    return ServiceSettings.model_validate({"depends_on": list(depends_on), "criticality": criticality, **kw})


SHOP = {
    "db": svc(criticality="critical"),
    "ledger": svc("db", criticality="high"),
    "payments": svc("ledger", criticality="critical"),
    "emails": svc(criticality="low"),
    "checkout": svc("payments", "emails"),
}


@pytest.mark.parametrize(
    ("services", "cycle"),
    [
        ({"a": svc("a")}, "a -> a"),
        ({"a": svc("b"), "b": svc("a")}, "a -> b -> a"),
        ({"x": svc(), "a": svc("b"), "b": svc("c"), "c": svc("a", "x")}, "a -> b -> c -> a"),
    ],
)
def test_cycles_are_rejected_and_named(services: dict[str, ServiceSettings], cycle: str) -> None:
    with pytest.raises(ValueError, match=f"cycle: {cycle}$"):
        validate_dependency_graph(services)


def test_unknown_dependency_is_named() -> None:
    with pytest.raises(ValueError, match=r"'a' depends on unknown services \['ghost'\]"):
        validate_dependency_graph({"a": svc("ghost")})


def test_unknown_or_self_fallback_service_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown service 'ghost'"):
        validate_dependency_graph({"a": svc(fallback=[{"kind": "service", "service": "ghost"}])})
    with pytest.raises(ValueError, match="falls back to itself"):
        validate_dependency_graph({"a": svc(fallback=[{"kind": "service", "service": "a"}])})


def test_direct_and_transitive_dependents() -> None:
    graph = DependencyGraph(SHOP)
    assert graph.dependents("db") == ("ledger",)
    assert graph.transitive_dependents("db") == ("checkout", "ledger", "payments")
    assert graph.transitive_dependencies("checkout") == ("db", "emails", "ledger", "payments")
    assert graph.transitive_dependents("checkout") == ()


def test_impact_and_cascade_risk() -> None:
    graph = DependencyGraph(SHOP)
    db = graph.impact("db")
    assert db.critical == ("payments",) and db.risk_level == "high"
    # weights: ledger 3 + payments 4 + checkout 2 out of ledger 3 + payments 4 + emails 1 + checkout 2
    assert db.cascade_risk == pytest.approx(9 / 10)
    emails = graph.impact("emails")
    assert emails.transitive == ("checkout",) and emails.risk_level == "low"
    assert emails.cascade_risk == pytest.approx(2 / 13)
    assert graph.impact("checkout").risk_level == "none"


def test_startup_order_puts_dependencies_first() -> None:
    order = DependencyGraph(SHOP).startup_order()
    for name, settings in SHOP.items():
        assert all(order.index(dep) < order.index(name) for dep in settings.depends_on)


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    n = draw(st.integers(1, 12))
    names = [f"s{i}" for i in range(n)]
    return {
        name: draw(st.lists(st.sampled_from(names[:i]), unique=True)) if i else []
        for i, name in enumerate(names)
    }


@given(dags(), st.data())
def test_any_dag_passes_and_any_back_edge_is_caught(edges: dict[str, list[str]], data: st.DataObject) -> None:
    services = {name: svc(*deps) for name, deps in edges.items()}
    graph = DependencyGraph(services)
    for name in edges:
        for dependent in graph.transitive_dependents(name):
            assert name in graph.transitive_dependencies(dependent)
    candidates = [(a, b) for a in edges for b in graph.transitive_dependents(a)] + [(a, a) for a in edges]
    source, target = data.draw(st.sampled_from(candidates))
    services[source] = svc(*edges[source], target)  # target already depends on source: now a cycle
    with pytest.raises(ValueError, match="cycle"):
        validate_dependency_graph(services)
