"""``breakwater flood``: a scripted webhook storm against a pipeline the command brings up itself.

Mount with ``app.command("flood")(flood)`` in ``services/cli/main.py``. It needs no config file: it
generates one (unique topic prefix and app id) and starts a local broker unless ``--bootstrap`` or
``BREAKWATER_KAFKA__BOOTSTRAP`` (or its short form ``BREAKWATER_KAFKA_BOOTSTRAP``) names one.

The flood's modules import psutil and matplotlib (the ``tooling`` extra), so they are imported only
once :func:`~services.flood.extras.require_tooling` found them: ``breakwater --help`` and every other
command work without the extra, and ``breakwater flood`` without it says how to install it (exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from services.cli.errors import ExitCode, fail
from services.config import BOOTSTRAP_ENV, SHORT_BOOTSTRAP_ENV
from services.flood.extras import ToolingMissing, require_tooling
from services.kafka.local import LocalKafkaError


def flood(
    report: Annotated[
        Path, typer.Option("--report", "-o", help="Where to write the JSON report (the PNG goes beside it).")
    ] = Path("flood-report.json"),
    scale: Annotated[
        float, typer.Option(min=0.001, help="Multiply every rate and count cap (0.1 is a small run).")
    ] = 1.0,
    duration: Annotated[
        float, typer.Option(min=1.0, help="Seconds of sending: a third at the normal rate, then the flood.")
    ] = 30.0,
    rate: Annotated[
        float, typer.Option(min=0.1, help="Normal webhooks a second (before --scale); the flood is 100x.")
    ] = 50.0,
    drain: Annotated[
        float, typer.Option(min=0.0, help="Seconds to wait for the queues to empty after sending.")
    ] = 30.0,
    connections: Annotated[int, typer.Option(min=1, help="Keep-alive connections to the edge.")] = 64,
    bootstrap: Annotated[
        str | None,
        typer.Option(
            envvar=[BOOTSTRAP_ENV, SHORT_BOOTSTRAP_ENV], help="Use this Kafka instead of a local broker."
        ),
    ] = None,
    keep_temp: Annotated[bool, typer.Option(help="Keep the temp dir (config, logs, broker data).")] = False,
) -> None:
    """Flood a fresh edge and worker with signed webhooks, then report and check the accounting.

    Normal traffic, then a 100x flood; 20% provider resends, a quarter of them hours late (refused).

    HTTP destinations rate-limit at 100/min, fail 40% with 500s, and slow to 2 s.

    Exits 1 when the accounting check fails (a webhook lost, delivered twice, or a dropped connection).
    """
    try:
        require_tooling("breakwater flood")
    except ToolingMissing as exc:
        fail(exc, ExitCode.USAGE)
    # Imported only now: they import the extra just checked (see the module docstring).
    from services.flood.report import print_summary
    from services.flood.runner import FloodOptions, run_flood
    from services.flood.scenario import default_scenario
    from services.flood.stack import StackError

    console = Console(stderr=True)
    scenario = default_scenario(
        scale=scale, duration=duration, rate=rate, drain=drain, connections=connections
    )
    options = FloodOptions(scenario=scenario, report_path=report, bootstrap=bootstrap, keep_temp=keep_temp)
    try:
        result = run_flood(options, console)
    except (StackError, LocalKafkaError) as exc:
        fail(exc)
    print_summary(result, Console())
    typer.echo(f"report: {report}" + (f", plot: {result['plot']}" if result.get("plot") else ""))
    if not result["accounting"]["passed"]:
        raise typer.Exit(ExitCode.FAILED)
