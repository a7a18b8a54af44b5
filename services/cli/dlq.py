"""``breakwater dlq`` (list, show, counts, replay, discard), ``breakwater stats`` and ``operators serve``.

Every command builds the DLQ index on demand from the topics (see services/operators/dlq_index.py)
and calls the same functions as the operator HTTP API, so both show the same data.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Coroutine
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.syntax import Syntax
from rich.table import Table

from services.cli.errors import ExitCode, fail
from services.config import BreakwaterSettings
from services.operators.config import OperatorSettings
from services.operators.dlq_index import AmbiguousId
from services.operators.filters import STATES, DlqFilter, FilterError, parse_time
from services.operators.replay import ActionReport
from services.operators.service import Operators, Selection
from services.operators.stats import HealthThresholds
from services.operators.views import to_json

__all__ = ["dlq_app", "operators_app", "stats"]

dlq_app = typer.Typer(help="Dead letters: list, show, count, replay and discard.", no_args_is_help=True)
operators_app = typer.Typer(help="The operator HTTP API (DLQ and stats).", no_args_is_help=True)
console = Console()
T = TypeVar("T")

Provider = Annotated[str | None, typer.Option(help="Only this provider.")]
EventType = Annotated[str | None, typer.Option("--event-type", help="Only this event type.")]
ErrorClass = Annotated[
    str | None,
    typer.Option("--error-class", "--error", help="Only this final error class (http_500...)."),
]
DestinationOpt = Annotated[str | None, typer.Option(help="Only dead letters for this destination.")]
Since = Annotated[str | None, typer.Option(help="Dead at or after: ISO 8601 or an age (15m, 2h, 7d).")]
Until = Annotated[str | None, typer.Option(help="Dead at or before: ISO 8601 or an age.")]
Limit = Annotated[int | None, typer.Option(help="At most this many (newest first).")]
StateOpt = Annotated[str, typer.Option(help=f"One of {', '.join(STATES)}; active = all but discarded.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Ids = Annotated[
    list[str] | None, typer.Argument(help="Dead letter ids (or unique prefixes).", show_default=False)
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Say what would happen; change nothing.")]
By = Annotated[str | None, typer.Option(help="Who does this (recorded in the mark); default: $USER.")]
Everything = Annotated[bool, typer.Option("--all", help="Allow a selection without ids or filters.")]


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except (FilterError, AmbiguousId) as exc:
        fail(exc, ExitCode.USAGE)
    except (KafkaError, TimeoutError) as exc:
        fail(f"Kafka did not answer ({type(exc).__name__}: {exc})")


def _ops(ctx: typer.Context) -> Operators:
    settings: BreakwaterSettings = ctx.obj.settings
    return Operators.of(settings)


def _filter(state: str = "active", ids: list[str] | None = None, **options: str | int | None) -> DlqFilter:
    text = {k: None if v is None else str(v) for k, v in options.items()}
    if ids:
        text["ids"] = ",".join(ids)
    try:
        return DlqFilter.parse({**text, "state": "all" if ids and state == "active" else state})
    except FilterError as exc:
        fail(exc, ExitCode.USAGE)


def _print_json(result: object) -> None:
    """``--json``: exactly what the HTTP API answers for the same request."""
    typer.echo(json.dumps(to_json(result), indent=2))


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    provider: Provider = None,
    event_type: EventType = None,
    error_class: ErrorClass = None,
    destination: DestinationOpt = None,
    since: Since = None,
    until: Until = None,
    state: StateOpt = "active",
    limit: Limit = 50,
    as_json: AsJson = False,
) -> None:
    """List dead letters, newest first (discarded ones only with --state discarded or all)."""
    criteria = _filter(
        state, provider=provider, event_type=event_type, error_class=error_class, destination=destination,
        since=since, until=until, limit=limit,
    )  # fmt: skip
    result = _run(_ops(ctx).listing(criteria))
    if as_json:
        _print_json(result)
        return
    table = Table(title=f"dead letters ({result.count})")
    table.add_column("id", no_wrap=True)  # ids are copied into show/replay: never fold them
    for column in ("dead at", "provider", "event type", "destination", "error", "state"):
        table.add_column(column, overflow="fold")
    for item in result.items:
        table.add_row(
            item.id, item.dead_at.strftime("%Y-%m-%d %H:%M"), item.provider, item.event_type,
            item.destination, item.error_class, item.state,
        )  # fmt: skip
    console.print(table)
    if result.truncated:
        console.print("[yellow]the scan hit its record limit: older dead letters are not shown[/yellow]")


@dlq_app.command("show")
def dlq_show(
    ctx: typer.Context,
    dead_letter_id: Annotated[str, typer.Argument(metavar="ID", help="Dead letter id or unique prefix.")],
    as_json: AsJson = False,
) -> None:
    """One dead letter whole: envelope, decoded body, headers, history, mark, related dead letters."""
    detail = _run(_ops(ctx).show(dead_letter_id))
    if detail is None:
        fail(f"no dead letter {dead_letter_id!r}")
    if as_json:
        _print_json(detail)
        return
    shown = to_json(detail)  # the summary's values as --json writes them (dead_at in ISO 8601)
    summary = "\n".join(
        f"[bold]{k}[/bold]: {shown[k]}"
        for k in ("id", "state", "dead_at", "provider", "event_type", "event_id", "destination", "reason")
    )
    console.print(Panel(summary, title="dead letter"))
    body = detail.body
    text = json.dumps(body.content, indent=2) if body.encoding == "json" else str(body.content)
    console.print(Panel(Syntax(text, "json" if body.encoding == "json" else "text"), title="body"))
    history = Table(title="history")
    for column in ("at", "stage", "destination", "error", "attempt", "message"):
        history.add_column(column, overflow="fold")
    for e in detail.history:
        history.add_row(
            e.at.strftime("%Y-%m-%dT%H:%M:%S"),
            e.stage,
            e.destination or "",
            e.error_class,
            str(e.attempt),
            e.message,
        )
    console.print(history)
    console.print(Panel(json.dumps(shown["envelope"], indent=2), title="envelope"))
    if detail.mark:
        console.print(Panel(json.dumps(shown["mark"], indent=2), title="mark"))
    if detail.related:
        console.print(
            Panel("\n".join(f"{r.id} {r.state} {r.destination}" for r in detail.related), title="related")
        )


@dlq_app.command("counts")
def dlq_counts(
    ctx: typer.Context,
    provider: Provider = None,
    event_type: EventType = None,
    error_class: ErrorClass = None,
    destination: DestinationOpt = None,
    since: Since = None,
    until: Until = None,
    state: StateOpt = "active",
    as_json: AsJson = False,
) -> None:
    """Dead letters per final error class."""
    criteria = _filter(
        state, provider=provider, event_type=event_type, error_class=error_class, destination=destination,
        since=since, until=until,
    )  # fmt: skip
    counts = _run(_ops(ctx).counts(criteria))
    if as_json:
        _print_json(counts)
        return
    table = Table(title="dead letters by error class")
    table.add_column("error class")
    table.add_column("count", justify="right")
    for error_class, count in counts.items():
        table.add_row(error_class, str(count))
    console.print(table)


def _act(
    ctx: typer.Context, action: str, criteria: DlqFilter, everything: bool, **kwargs: Any
) -> ActionReport:
    ops = _ops(ctx)

    async def go() -> ActionReport:
        selection: Selection = await ops.select(criteria, everything=everything)
        with Progress(
            TextColumn(f"{action}"), BarColumn(), MofNCompleteColumn(), console=console, transient=True
        ) as progress:
            task = progress.add_task(action, total=len(selection.entries))
            method = ops.replay if action == "replay" else ops.discard
            return await method(selection, progress=lambda n: progress.advance(task, n), **kwargs)

    report = _run(go())
    verb = "replayed" if action == "replay" else "discarded"
    if kwargs.get("dry_run"):
        verb = f"would be {verb}"
    table = Table(title=f"{action}{' (dry run)' if report.dry_run else ''}")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    table.add_row(verb, str(len(report.done)))
    table.add_row(
        f"skipped (already {'replayed' if action == 'replay' else 'marked'})", str(len(report.skipped))
    )
    table.add_row("failed", str(len(report.failed)))
    console.print(table)
    for ident, reason in report.failed:
        console.print(f"[red]failed[/red] {ident}: {reason}")
    if report.failed:
        raise typer.Exit(ExitCode.FAILED)
    return report


@dlq_app.command("replay")
def dlq_replay(
    ctx: typer.Context,
    ids: Ids = None,
    provider: Provider = None,
    event_type: EventType = None,
    error_class: ErrorClass = None,
    destination: DestinationOpt = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = None,
    dry_run: DryRun = False,
    by: By = None,
    everything: Everything = False,
) -> None:
    """Re-publish dead letters to their provider's ready topic for the destination that failed.

    Records already replayed are skipped; publish and mark commit in one transaction.
    """
    criteria = _filter(
        "active", ids, provider=provider, event_type=event_type, error_class=error_class,
        destination=destination, since=since, until=until, limit=limit,
    )  # fmt: skip
    _act(ctx, "replay", criteria, everything, by=by or getpass.getuser(), dry_run=dry_run)


@dlq_app.command("discard")
def dlq_discard(
    ctx: typer.Context,
    ids: Ids = None,
    provider: Provider = None,
    event_type: EventType = None,
    error_class: ErrorClass = None,
    destination: DestinationOpt = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = None,
    notes: Annotated[str | None, typer.Option(help="Why (kept in the mark).")] = None,
    dry_run: DryRun = False,
    by: By = None,
    everything: Everything = False,
) -> None:
    """Mark dead letters discarded (nothing is published; they leave the default list)."""
    criteria = _filter(
        "active", ids, provider=provider, event_type=event_type, error_class=error_class,
        destination=destination, since=since, until=until, limit=limit,
    )  # fmt: skip
    _act(ctx, "discard", criteria, everything, by=by or getpass.getuser(), notes=notes, dry_run=dry_run)


def stats(
    ctx: typer.Context,
    since: Annotated[
        str, typer.Option(help="Count dead/quarantined records from: ISO 8601 or an age.")
    ] = "1h",
    until: Until = None,
    lag_warn: Annotated[int, typer.Option(min=0, help="Total lag that starts costing health.")] = 1_000,
    lag_critical: Annotated[int, typer.Option(min=0, help="Total lag that costs half the health.")] = 100_000,
    dead_warn: Annotated[
        int, typer.Option(min=0, help="Dead letters in the range that start costing health.")
    ] = 10,
    dead_critical: Annotated[
        int, typer.Option(min=0, help="Dead letters in the range that cost half.")
    ] = 1_000,
    as_json: AsJson = False,
) -> None:
    """Consumer lag per group and partition, dead-lettered and quarantined per provider, a health score."""
    try:
        start: datetime | None = parse_time(since, field="since")
        end = parse_time(until, field="until") if until else None
    except FilterError as exc:
        fail(exc, ExitCode.USAGE)
    thresholds = HealthThresholds(lag_warn, lag_critical, dead_warn, dead_critical)
    result = _run(_ops(ctx).stats(since=start, until=end, thresholds=thresholds))
    if as_json:
        _print_json(result)
        return
    lag = Table(title=f"consumer lag (total {result.lag_total})")
    for column in ("group", "topic", "partition", "committed", "end", "lag"):
        lag.add_column(
            column, justify="right" if column in ("partition", "committed", "end", "lag") else "left"
        )
    for row in result.lag:
        committed = "-" if row.committed is None else str(row.committed)
        shown = str(row.lag) if row.exact else f"≤{row.lag}"
        lag.add_row(row.group, row.topic, str(row.partition), committed, str(row.end), shown)
    console.print(lag)
    if any(not row.exact for row in result.lag):
        console.print("≤: too far behind to count record by record; offsets counted, markers included")
    per_provider = Table(title=f"since {result.since.isoformat() if result.since else None}")
    for column in ("provider", "dead-lettered", "quarantined"):
        per_provider.add_column(column)
    dead, quarantined = result.dead_by_provider, result.quarantined_by_provider
    for provider in sorted(set(dead) | set(quarantined)):
        per_provider.add_row(provider, str(dead.get(provider, 0)), str(quarantined.get(provider, 0)))
    console.print(per_provider)
    console.print(f"health: [bold]{result.health}[/bold]/100")


@operators_app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface (default: operators.host).")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default: operators.port).")
    ] = None,
) -> None:
    """Run the operator HTTP API; every route but /healthz and /readyz needs the bearer token."""
    from services import http_server
    from services.operators.api import create_operator_app

    settings: BreakwaterSettings = ctx.obj.settings
    config: OperatorSettings = getattr(settings, "operators", None) or OperatorSettings()
    if config.token is None:
        typer.secho(
            "warning: operators.token is not set: every protected route answers 401", fg="yellow", err=True
        )
    http_server.run(  # the edge's header and read limits: it faces the same networks
        create_operator_app(settings, config),
        http_server.ServerLimits.defaults(),
        host=host or config.host,
        port=port or config.port,
        access_log=False,
        log_level=settings.log_level.lower(),
    )
