"""``breakwater acls``: the least-privilege ACLs of the configured pipeline, printed or applied."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Column, Table

from services.cli.errors import fail
from services.config import BreakwaterSettings
from services.kafka.acls import AclBinding, AclError, RolePrincipals, apply_acls, pipeline_acls
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
    columns = [
        Column(name, no_wrap=True) for name in ("principal", "operation", "resource", "name", "pattern")
    ]
    table = Table(*columns, box=box.SIMPLE_HEAD, pad_edge=False)
    for b in bindings:
        table.add_row(b.principal, b.operation.name, b.resource.name, b.name, b.pattern.name)
    console.print(table)
    if apply:
        try:
            count = asyncio.run(apply_acls(settings.kafka, bindings))
        except AclError as exc:
            fail(exc)
        typer.echo(f"{count} ACLs applied on {settings.kafka.servers}")
