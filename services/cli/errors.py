"""How every ``breakwater`` command reports an error: ``error: <message>`` on stderr, one exit code per kind.

    fail(f"no provider {name!r} in the configuration", ExitCode.USAGE)  # stderr, exit 2

A script tells the kinds apart by the code alone: 2 means the command was asked for something wrong (an
option, a setting, an id prefix, a missing extra) and running it again unchanged fails again; 1 means
the command ran and something it depends on failed (Kafka, the edge, a port, a check), which may pass
on a second run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import NoReturn

import typer
from aiokafka.errors import KafkaError

from services.errors import BreakwaterError

__all__ = ["ExitCode", "fail", "kafka_failures_reported"]


class ExitCode(IntEnum):
    FAILED = 1
    """The command ran; Kafka, the edge, a port or a check it makes said no."""
    USAGE = 2
    """The command was asked for something wrong: fix the input, not the system."""


def fail(message: object, code: ExitCode = ExitCode.FAILED) -> NoReturn:
    """Print ``error: <message>`` to stderr and end the command with ``code`` (no traceback)."""
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code) from None  # called in an except block: the cause is in the message


@contextmanager
def kafka_failures_reported() -> Iterator[None]:
    """Around work on a cluster: Breakwater's and Kafka's errors end the command with one line, exit 1
    (an authorization, a connection or a topic the user may not create), never a traceback."""
    try:
        yield
    except (BreakwaterError, KafkaError) as exc:
        fail(f"{type(exc).__name__}: {exc}")
