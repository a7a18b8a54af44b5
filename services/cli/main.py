"""``breakwater``: the one command line for running and operating Breakwater.

Every command takes ``--config PATH`` (or ``BREAKWATER_CONFIG``) before its name and has ``--help``.
Settings load only when a command needs them, so ``--help`` works anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from services.cli.acls import acls
from services.cli.dlq import dlq_app, operators_app, stats
from services.cli.errors import fail
from services.cli.flood import flood
from services.cli.kafka import kafka_app, topics_app
from services.cli.run import up
from services.cli.sample import sample
from services.cli.state import CliState
from services.config import BreakwaterSettings
from services.reliability.cli import app as services_app
from services.telemetry import configure_logging as setup_logging

app = typer.Typer(
    name="breakwater",
    help="Breakwater: a verifying webhook edge in front of an exactly-once Kafka pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")
app.command("up")(up)
app.command("sample")(sample)
app.add_typer(services_app, name="services")
app.add_typer(dlq_app, name="dlq")
app.add_typer(operators_app, name="operators")
app.command("stats")(stats)
app.command("flood")(flood)
app.command("acls")(acls)

schemas_app = typer.Typer(help="The committed JSON Schema files for every record type.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")


ROLE_OF_COMMAND = {
    "edge": "edge",
    "worker": "worker",
    "dlq": "operator",
    "stats": "operator",
    "operators": "operator",
    "services": "operator",
}


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", envvar="BREAKWATER_CONFIG", help="TOML config file (providers, routes, limits)."
        ),
    ] = None,
) -> None:
    # On the secure local broker each command connects as the role whose ACLs it needs: the edge and the
    # worker as themselves, the operator's commands (a network-facing API among them) as the operator,
    # only what administers the cluster (kafka, topics, acls, up) as admin.
    ctx.obj = CliState(config, ROLE_OF_COMMAND.get(ctx.invoked_subcommand or "", "admin"))


def configure_logging(settings: BreakwaterSettings) -> None:
    setup_logging(settings.log_level, settings.telemetry.log_format)


@app.command()
def edge(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default: edge.host).")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port to listen on (default: edge.port).")
    ] = None,
    processes: Annotated[
        int | None, typer.Option(min=1, help="Processes sharing the port (default: edge.processes).")
    ] = None,
) -> None:
    """Run the HTTP edge: verify provider signatures, write envelopes to Kafka, answer 202."""
    from services import http_server
    from services.edge.app import create_app
    from services.runtime import freeze_startup_objects

    settings = ctx.obj.settings
    configure_logging(settings)
    count = processes or settings.edge.processes
    limits = http_server.ServerLimits.from_edge(settings.edge)  # httptools, with header and read limits
    options: dict[str, Any] = {
        "host": host or settings.edge.host,
        "port": port or settings.edge.port,
        "loop": "uvloop",
        "access_log": False,
        "timeout_keep_alive": settings.edge.keep_alive_seconds,
        "backlog": 4096,  # a flood opens connections faster than one process accepts them
        "log_level": settings.log_level.lower(),
        "log_config": None,  # keep the JSON logging configured above
    }
    if count == 1:
        app = create_app(settings)
        freeze_startup_objects()
        http_server.run(app, limits, **options)
        return
    if ctx.obj.config is not None:  # each process loads the same settings itself
        os.environ["BREAKWATER_CONFIG"] = str(ctx.obj.config)
    http_server.run("services.edge.app:app_from_environment", limits, factory=True, workers=count, **options)


@app.command()
def worker(ctx: typer.Context) -> None:
    """Run a pipeline worker (dedup, dispatch, retry tiers); several form one consumer group."""
    from services.kafka.admin import MissingTopicsError
    from streams.worker import run_worker

    settings = ctx.obj.settings
    configure_logging(settings)
    try:
        run_worker(settings)
    except MissingTopicsError as exc:  # one line naming them, exit 1: not a traceback per loop
        fail(exc)


@schemas_app.command("export")
def schemas_export() -> None:
    """Regenerate schemas/jsonschema/*.json from the models."""
    from schemas.export import export

    for path in export():
        typer.echo(path)


@schemas_app.command("check")
def schemas_check() -> None:
    """Exit 1 when a committed schema file differs from its model."""
    from schemas.export import drifted

    stale = drifted()
    if stale:
        fail(f"schema files out of date: {', '.join(stale)} (run: breakwater schemas export)")
    typer.echo("schema files match the models")


if __name__ == "__main__":
    app()
