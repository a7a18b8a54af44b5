"""The least-privilege ACLs: each role gets exactly what its clients do, named from PipelineTopics."""

from __future__ import annotations

from schemas.topics import PipelineTopics
from services.kafka.acls import AclBinding, Operation, Pattern, Resource, RolePrincipals, pipeline_acls

TOPICS = PipelineTopics(
    prefix="t1.", app_id="shop", providers=("github", "stripe"), retry_tiers=("10s", "1m")
)
ROLES = RolePrincipals()
ACLS = pipeline_acls(TOPICS, ROLES, route_topics=["t1.crm.events"])


def grants(principal: str) -> set[tuple[str, str, str, str]]:
    return {
        (a.operation.name, a.resource.name, a.name, a.pattern.name) for a in ACLS if a.principal == principal
    }


def names(principal: str, operation: Operation, resource: Resource = Resource.TOPIC) -> set[str]:
    return {
        a.name
        for a in ACLS
        if a.principal == principal and a.operation is operation and a.resource is resource
    }


def test_the_edge_only_writes_inbound_idempotently() -> None:
    assert grants(ROLES.edge) == {
        ("WRITE", "TOPIC", "t1.webhooks.inbound", "LITERAL"),
        ("DESCRIBE", "TOPIC", "t1.webhooks.inbound", "LITERAL"),
        ("IDEMPOTENT_WRITE", "CLUSTER", "kafka-cluster", "LITERAL"),
    }


def test_the_worker_reads_its_inputs_and_writes_its_outputs() -> None:
    assert names(ROLES.worker, Operation.READ) == {
        "t1.webhooks.inbound",
        "t1.webhooks.ready.github",
        "t1.webhooks.ready.stripe",
        "t1.webhooks.retry.10s",
        "t1.webhooks.retry.1m",
        "t1.shop.dedup.changelog",
    }
    assert names(ROLES.worker, Operation.WRITE) == {
        "t1.webhooks.inbound",
        "t1.webhooks.ready.github",
        "t1.webhooks.ready.stripe",
        "t1.webhooks.retry.10s",
        "t1.webhooks.retry.1m",
        "t1.webhooks.events",
        "t1.crm.events",
        "t1.webhooks.dlq",
        "t1.webhooks.quarantine",
        "t1.shop.dedup.changelog",
    }
    assert TOPICS.dlq_state not in names(ROLES.worker, Operation.WRITE)  # the operators' marks


def test_the_worker_uses_its_own_groups_and_prefixed_transactional_ids() -> None:
    groups = {q.group for q in TOPICS.queues()}
    assert names(ROLES.worker, Operation.READ, Resource.GROUP) == groups
    txn = {a for a in ACLS if a.principal == ROLES.worker and a.resource is Resource.TRANSACTIONAL_ID}
    assert {a.pattern for a in txn} == {Pattern.PREFIXED}
    prefixes = {a.name for a in txn}
    assert prefixes == {
        "shop-dedup-",
        "shop-dispatch-github-",
        "shop-dispatch-stripe-",
        "shop-retry-10s-",
        "shop-retry-1m-",
    }
    assert any(TOPICS.transactional_id("dispatch-stripe", "pod-0").startswith(p) for p in prefixes)
    assert not any(TOPICS.replay_transactional_id.startswith(p) for p in prefixes)  # the operators' id


def test_operators_read_dead_letters_and_write_what_a_replay_writes() -> None:
    assert names(ROLES.operator, Operation.READ) == {
        "t1.webhooks.dlq",
        "t1.webhooks.quarantine",
        "t1.webhooks.dlq.state",
    }
    assert names(ROLES.operator, Operation.WRITE) == {
        "t1.webhooks.ready.github",
        "t1.webhooks.ready.stripe",
        "t1.webhooks.dlq.state",
        "t1.ops.alerts",  # `breakwater services monitor`
    }
    assert names(ROLES.operator, Operation.WRITE, Resource.TRANSACTIONAL_ID) == {"shop-dlq-replay"}
    assert not names(ROLES.operator, Operation.READ, Resource.GROUP)  # describes the groups, joins none


def test_a_downstream_consumer_reads_the_events_topics_only() -> None:
    assert names(ROLES.consumer, Operation.READ) == {"t1.webhooks.events", "t1.crm.events"}
    assert not names(ROLES.consumer, Operation.WRITE)
    group = [a for a in ACLS if a.principal == ROLES.consumer and a.resource is Resource.GROUP]
    assert {(a.name, a.pattern) for a in group} == {("consumer-", Pattern.PREFIXED)}


def test_no_role_may_create_alter_or_delete_and_admin_needs_none() -> None:
    assert {a.operation for a in ACLS} <= {
        Operation.READ,
        Operation.WRITE,
        Operation.DESCRIBE,
        Operation.IDEMPOTENT_WRITE,
    }
    assert {a.principal for a in ACLS} == set(ROLES.roles().values())
    assert sorted(set(ACLS)) == ACLS  # stable, no duplicates


def test_principals_and_prefix_come_from_the_arguments() -> None:
    other = pipeline_acls(PipelineTopics(), RolePrincipals(edge="User:gw", consumer_group_prefix="crm-"))
    assert (
        AclBinding("User:gw", Resource.TOPIC, "webhooks.inbound", Pattern.LITERAL, Operation.WRITE) in other
    )
    assert any(a.name == "crm-" and a.resource is Resource.GROUP for a in other)


def test_breakwater_acls_prints_one_line_a_principal_and_resource_at_80_columns() -> None:
    from pathlib import Path

    from typer.testing import CliRunner

    from services.cli.main import app

    config = Path(__file__).parents[3] / "deploy" / "local" / "breakwater.toml"
    result = CliRunner().invoke(app, ["--config", str(config), "acls"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(len(line) <= 80 and "…" not in line for line in lines), result.output
    rows = [line.rstrip().split(None, 3) for line in lines[1:] if line.startswith("User:")]
    edge = {(resource, name): ops for principal, resource, name, ops in rows if principal == "User:edge"}
    assert edge == {
        ("topic", "webhooks.inbound"): "write, describe",
        ("cluster", "kafka-cluster"): "idempotent_write",
    }
    assert ("txn-id", "breakwater-dedup-*") in {(r, n) for p, r, n, _ in rows if p == "User:worker"}
