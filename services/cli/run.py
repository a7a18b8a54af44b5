"""``breakwater up``: the whole system on one machine (what ``make run`` runs).

Starts the local broker (unless an external cluster is configured, or the broker already runs: then
it is used and left running), ensures the topic catalogue, then runs the edge and a worker as child
processes until Ctrl-C, and stops what it started, nothing else. A port the edge or the worker needs
that is taken (a second ``make run``) is refused before anything starts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer

from services.cli.errors import fail
from services.cli.kafka import start_local_broker
from services.config import BreakwaterSettings
from services.kafka.admin import ensure_topics
from streams.topics import catalogue


def _child(
    command: str, config: Path | None, role_env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``breakwater {command}``; on a secure local broker ``role_env`` makes it connect as its own role."""
    env = {**os.environ, **(role_env or {})}
    if config is not None:
        env["BREAKWATER_CONFIG"] = str(config)
    return subprocess.Popen([sys.executable, "-m", "services.cli.main", command], env=env)


def up(
    ctx: typer.Context,
    worker: Annotated[bool, typer.Option(help="Also run a pipeline worker.")] = True,
    keep_kafka: Annotated[bool, typer.Option(help="Leave the local broker running on exit.")] = False,
) -> None:
    """Run Kafka, the topics, the edge and a worker on this machine until Ctrl-C."""
    settings = ctx.obj.settings
    for name, host, port in _ports(settings, worker):
        if not _free(host, port):
            fail(
                f"{name} {host}:{port} is in use (another breakwater up, or an edge?); "
                f"stop it or set {name} to a free port"
            )
    broker, started = start_local_broker(settings) if not settings.kafka.bootstrap else (None, False)
    kafka = broker.client_settings("admin", settings.kafka) if broker and broker.secure else settings.kafka
    result = asyncio.run(ensure_topics(kafka, catalogue(settings)))
    typer.echo(f"topics: {len(result.created)} created, {len(result.present) + len(result.grown)} present")

    def role(name: str) -> dict[str, str] | None:
        """The role's own principal on the secure local broker (the edge may only write inbound...)."""
        return broker.role_environment(name) if broker and broker.secure else None

    children = {"edge": _child("edge", ctx.obj.config, role("edge"))}
    if worker:
        children["worker"] = _child("worker", ctx.obj.config, role("worker"))
    typer.echo(
        f"edge on http://{settings.edge.host}:{settings.edge.port} "
        f"({', '.join(children)} running; Ctrl-C stops them)"
    )

    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    try:
        while not stopping:
            for name, process in children.items():
                if process.poll() is not None:
                    typer.secho(f"{name} exited with {process.returncode}; stopping", fg="red", err=True)
                    exit_code = 1
                    stopping = True
            time.sleep(0.2)
    finally:
        for process in children.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in children.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        if broker is not None and started and not keep_kafka:
            broker.stop()
            typer.echo("Kafka stopped")
        elif broker is not None and not started:
            typer.echo("Kafka left running: another process started it")
    raise typer.Exit(exit_code)


def _ports(settings: BreakwaterSettings, worker: bool) -> list[tuple[str, str, int]]:
    """The setting name, host and port of every listener ``up`` is about to start."""
    ports = [("edge.port", settings.edge.host, settings.edge.port)]
    if worker and settings.pipeline.probe_port is not None:
        ports.append(("pipeline.probe_port", settings.pipeline.probe_host, settings.pipeline.probe_port))
    return ports


def _free(host: str, port: int) -> bool:
    """Whether a listener could bind ``host:port`` now (SO_REUSEADDR, as uvicorn binds: only a live
    listener makes it fail, not the last run's connections in TIME_WAIT)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
