"""``breakwater acls``: the least-privilege ACLs of the configured pipeline, printed or applied."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from services.cli.errors import kafka_failures_reported
from services.config import BreakwaterSettings
from services.kafka.acls import AclBinding, RolePrincipals, apply_acls, pipeline_acls
from streams.topics import pipeline_topics

console = Console()


def configured_acls(
    settings: BreakwaterSettings, principals: RolePrincipals | None = None
) -> list[AclBinding]:
    """The ACLs of the pipeline ``settings`` configure (prefix, app id, providers, tiers, routes)."""
    topics = pipeline_topics(settings)
    routes = [
        topics.name(destination.topic)
        for destination in settings.pipeline.destinations.values()
        if destination.kind == "kafka"
    ]
    return pipeline_acls(topics, principals or RolePrincipals(), routes)


def acls(
    ctx: typer.Context,
    apply: Annotated[
        bool, typer.Option("--apply", help="Create them on the cluster (as kafka.sasl_username).")
    ] = False,
    edge: Annotated[str, typer.Option(help="The edge's principal.")] = RolePrincipals.edge,
    worker: Annotated[str, typer.Option(help="The workers' principal.")] = RolePrincipals.worker,
    operator: Annotated[str, typer.Option(help="The operators' principal.")] = RolePrincipals.operator,
    consumer: Annotated[
        str, typer.Option(help="A downstream consumer's principal.")
    ] = RolePrincipals.consumer,
    consumer_group_prefix: Annotated[
        str, typer.Option(help="The downstream consumer's groups start with this.")
    ] = RolePrincipals.consumer_group_prefix,
) -> None:
    """Print the ACLs each role needs (topic prefix, app id, providers and tiers from the settings)."""
    settings = ctx.obj.settings
    principals = RolePrincipals(edge, worker, operator, consumer, consumer_group_prefix)
    bindings = configured_acls(settings, principals)
    # One row a principal and resource, its operations together, a prefix shown as `name*`: one line a
    # row at 80 columns, where a row per binding was cut off.
    rows: dict[tuple[str, str, str], list[str]] = {}
    for b in bindings:
        name = f"{b.name}*" if b.pattern.name == "PREFIXED" else b.name
        resource = "txn-id" if b.resource.name == "TRANSACTIONAL_ID" else b.resource.name.lower()
        rows.setdefault((b.principal, resource, name), []).append(b.operation.name.lower())
    columns = [Column(name, no_wrap=True) for name in ("principal", "resource", "name", "operations")]
    table = Table(*columns, box=None, pad_edge=False, padding=(0, 2, 0, 0), show_edge=False)
    for (principal, resource, name), operations in rows.items():
        table.add_row(principal, resource, name, ", ".join(operations))
    console.print(table)
    console.print(
        f"{len(bindings)} ACLs for {len({p for p, _, _ in rows})} principals; a name ending in * is a prefix"
    )
    if apply:
        with kafka_failures_reported():  # AclError, authorization, connection
            count = asyncio.run(apply_acls(settings.kafka, bindings))
        typer.echo(f"{count} ACLs applied on {settings.kafka.servers}")
