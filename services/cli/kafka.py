"""``breakwater kafka`` (the embedded local broker) and ``breakwater topics`` (the catalogue)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Column, Table

from services.cli.errors import ExitCode, fail, kafka_failures_reported
from services.config import BreakwaterSettings
from services.kafka.acls import apply_acls
from services.kafka.admin import broker_answers, ensure_topics
from services.kafka.local import ROLES, LocalKafka, LocalKafkaError, fetch_jars
from streams.topics import catalogue

kafka_app = typer.Typer(help="The local single-node Kafka (KRaft) for one machine.", no_args_is_help=True)
topics_app = typer.Typer(help="The topic catalogue: every topic Breakwater owns.", no_args_is_help=True)
console = Console()


def local_broker(settings: BreakwaterSettings, *, quiet: bool = True, secure: bool = False) -> LocalKafka:
    """The configured local node, its jars fetched; secure when asked, configured, or formatted so."""
    local = settings.kafka.local
    try:
        libs = fetch_jars(local.version, local.cache_dir, quiet=quiet)
    except LocalKafkaError as exc:
        fail(exc)
    return local_node(settings, libs, secure=secure)


def local_node(settings: BreakwaterSettings, libs: Path, *, secure: bool = False) -> LocalKafka:
    """The configured local node (``kafka.local``) with the jars in ``libs``."""
    local = settings.kafka.local
    return LocalKafka(
        libs=libs,
        home=local.home,
        host=local.host,
        port=local.port,
        controller_port=local.controller_port,
        heap=local.heap,
        data=local.data_dir,
        log=local.log_file,
        secure=secure or local.secure or (local.home / "credentials" / "admin.password").is_file(),
    )


def as_local_role(settings: BreakwaterSettings, role: str = "admin") -> BreakwaterSettings:
    """``settings`` with ``role``'s credentials on the secure local broker, when that is the cluster in use.

    Commands run on this machine (topics, dlq, stats, acls as admin; edge and worker as themselves) then
    need no security settings of their own; a configured ``kafka.bootstrap`` or
    ``kafka.security_protocol`` is left as it is. Reads the node's home only (no jars, no broker).
    """
    kafka = settings.kafka
    if kafka.bootstrap or kafka.security_protocol != "PLAINTEXT":
        return settings
    node = local_node(settings, libs=kafka.local.cache_dir)  # the jars are not needed to read its home
    if not node.secure or not (node.credentials_dir / "admin.password").is_file():
        return settings
    options = node.role_options(role)
    del options["bootstrap"]  # still the local node (kafka.local), not an external cluster
    return settings.model_copy(update={"kafka": kafka.model_copy(update=options)})


def _external(settings: BreakwaterSettings) -> bool:
    if settings.kafka.bootstrap:
        typer.echo(
            f"kafka.bootstrap is {settings.kafka.bootstrap} (an existing cluster): nothing is started here"
        )
        return True
    return False


@kafka_app.command("fetch")
def kafka_fetch(ctx: typer.Context) -> None:
    """Download the Kafka jars from Maven Central into the cache (start does this too)."""
    settings = ctx.obj.settings
    libs = local_broker(settings, quiet=False).libs
    typer.echo(f"Kafka {settings.kafka.local.version} jars in {libs}")


@kafka_app.command("start")
def kafka_start(
    ctx: typer.Context,
    secure: Annotated[
        bool,
        typer.Option(
            "--secure",
            help="SASL_SSL (SCRAM-SHA-512) with a generated CA, a user per role and ACLs "
            "(kafka.local.secure); a node formatted secure stays secure.",
        ),
    ] = False,
) -> None:
    """Start the local broker (formatting it on first use); returns once it answers."""
    settings = ctx.obj.settings
    if _external(settings):
        return
    start_local_broker(settings, secure=secure)


def start_local_broker(settings: BreakwaterSettings, *, secure: bool = False) -> tuple[LocalKafka, bool]:
    """Start, or find running, the configured local broker; True when this process started it.

    One it found running belongs to whoever started it: the caller uses it and leaves it running.
    A secure one gets the catalogue's topics and the roles' ACLs, and says where each role's
    credentials are. A failure ends the command with exit 1.
    """
    broker = local_broker(settings, secure=secure)
    try:
        started = broker.start(timeout=settings.kafka.local.start_timeout_seconds)
    except LocalKafkaError as exc:
        fail(exc)
    version = settings.kafka.local.version
    if started:
        typer.echo(f"Kafka {version} answers on {broker.bootstrap} (pid {broker.pid()})")
    else:
        typer.echo(
            f"Kafka {version} already runs on {broker.bootstrap} (pid {broker.pid()}, started by another "
            "process): using it, and leaving it running (breakwater kafka stop stops it)"
        )
    if broker.secure:
        secure_setup(settings, broker)
    return broker, started


def secure_setup(settings: BreakwaterSettings, broker: LocalKafka) -> None:
    """Topics (as admin: no role may create them) and least-privilege ACLs on a secure local broker."""
    from services.cli.acls import configured_acls

    admin = broker.client_settings("admin", settings.kafka)
    with kafka_failures_reported():
        asyncio.run(ensure_topics(admin, catalogue(settings)))
        count = asyncio.run(apply_acls(admin, configured_acls(settings)))
    typer.echo(f"SASL_SSL ({', '.join(ROLES)}): {count} ACLs applied; CA {broker.tls.ca}")
    typer.echo(
        f"each role's settings: {broker.credentials_dir}/<role>.env (passwords beside them, mode 0600)"
    )


@kafka_app.command("stop")
def kafka_stop(ctx: typer.Context) -> None:
    """Stop the local broker cleanly."""
    settings = ctx.obj.settings
    if _external(settings):
        return
    stopped = local_broker(settings).stop()
    typer.echo("Kafka stopped" if stopped else "Kafka was not running")


@kafka_app.command("status")
def kafka_status(ctx: typer.Context) -> None:
    """Say what runs where; exit 1 when no broker answers."""
    settings = ctx.obj.settings
    bootstrap = settings.kafka.servers
    answers = broker_answers(settings.kafka)
    table = Table(show_header=False)
    if settings.kafka.bootstrap:
        table.add_row("mode", "external cluster")
    else:
        broker = local_broker(settings)
        pid = broker.pid()
        table.add_row("mode", f"local Kafka {settings.kafka.local.version}")
        table.add_row("process", f"pid {pid}" if pid else "not running")
        table.add_row("data", str(broker.data_dir))
        table.add_row("log", str(broker.log_file))
    table.add_row("bootstrap", bootstrap)
    user = f" as {settings.kafka.sasl_username}" if settings.kafka.sasl_username else ""
    table.add_row("security", f"{settings.kafka.security_protocol}{user}")
    table.add_row("answers", "yes" if answers else "no")
    console.print(table)
    if not answers:
        raise typer.Exit(ExitCode.FAILED)


@topics_app.command("ensure")
def topics_ensure(ctx: typer.Context) -> None:
    """Create the catalogue's missing topics and grow partition counts (idempotent)."""
    settings = ctx.obj.settings
    specs = catalogue(settings)
    with kafka_failures_reported():  # e.g. no right to create topics
        result = asyncio.run(ensure_topics(settings.kafka, specs))
    table = Table("topic", "partitions", "replicas", "state")
    for spec in specs:
        state = (
            "created" if spec.name in result.created else "grown" if spec.name in result.grown else "present"
        )
        if spec.name in result.reconfigured:
            state += ", max.message.bytes raised"
        table.add_row(spec.name, str(spec.partitions), str(spec.replication_factor), state)
    console.print(table)


@topics_app.command("list")
def topics_list(ctx: typer.Context) -> None:
    """Show the catalogue for the current configuration and each topic's record schema (no broker needed).

    A record schema names a file in ``schemas/jsonschema/``; ``none (...)`` says what the records are instead.
    """
    # Names and schemas are what a reader copies: the purpose wraps instead, and below 100 columns
    # (a pipe, a narrow terminal) it goes, so the rest stays one line a topic.
    columns = [
        Column("topic", no_wrap=True),
        Column("partitions", justify="right", no_wrap=True),
        Column("replicas", justify="right", no_wrap=True),
        Column("record schema", no_wrap=True),
    ]
    wide = console.width >= 100
    table = Table(
        *columns, *([Column("purpose", ratio=1)] if wide else []), box=box.SIMPLE_HEAD, pad_edge=False
    )
    for spec in catalogue(ctx.obj.settings):
        cells = [spec.name, str(spec.partitions), str(spec.replication_factor), spec.record_schema]
        table.add_row(*cells, *([spec.purpose] if wide else []))
    console.print(table)
