"""``breakwater services``: the reliability of the services Breakwater depends on.

Mounted by the main CLI; ``ctx.obj`` holds the loaded ``BreakwaterSettings`` (or the CLI state object
that loads them on first use, as ``.settings``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Annotated, Any

import typer
from rich.console import Console

from services.cli.errors import ExitCode, fail
from services.reliability.alerts import AlertManager
from services.reliability.config import ServiceSettings
from services.reliability.health import HealthChecker
from services.reliability.registry import ServiceRegistry
from services.reliability.report import ServiceReport, build_report, report_json, report_table

app = typer.Typer(help="Services Breakwater depends on: health, SLA, dependencies.", no_args_is_help=True)


def _services(obj: Any) -> Mapping[str, ServiceSettings]:
    settings = getattr(obj, "settings", obj)  # the CLI state object, or the settings themselves
    services: Mapping[str, ServiceSettings] = getattr(settings, "services", None) or {}
    return services


async def _collect(services: Mapping[str, ServiceSettings], check: bool) -> list[ServiceReport]:
    registry = ServiceRegistry(services, alerts=AlertManager(sinks=[]))  # a report alerts no one
    if check:
        async with HealthChecker(registry) as checker:
            await checker.check_all()
    return build_report(registry)


@app.command()
def report(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="Probe every service with a health check once first.")
    ] = True,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 if a service is down or breaches its SLA.")
    ] = False,
) -> None:
    """Print each service's state, success and fallback rates, latency percentiles and SLA compliance."""
    services = _services(ctx.obj)
    rows = asyncio.run(_collect(services, check))
    if as_json:
        typer.echo(report_json(rows))
    elif not rows:
        typer.echo("no services configured")
    else:
        Console().print(report_table(rows))
    if strict and any(r.state == "down" or r.sla_compliant is False for r in rows):
        raise typer.Exit(ExitCode.FAILED)


@app.command()
def impact(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="The service whose failure to assess.")],
) -> None:
    """Show which services fail with SERVICE, and the cascade risk."""
    services = _services(ctx.obj)
    if service not in services:
        fail(f"no service named {service!r}", ExitCode.USAGE)
    result = ServiceRegistry(services, alerts=AlertManager(sinks=[])).graph.impact(service)
    typer.echo(f"{service}: risk {result.risk_level} ({result.cascade_risk:.0%} of weighted services)")
    typer.echo(f"  direct dependents:     {', '.join(result.direct) or '-'}")
    typer.echo(f"  all dependents:        {', '.join(result.transitive) or '-'}")
    typer.echo(f"  critical among them:   {', '.join(result.critical) or '-'}")
