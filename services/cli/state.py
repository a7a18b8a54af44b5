"""What every command gets in ``ctx.obj``: the ``--config`` path and settings loaded on first use."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from services.cli.errors import ExitCode, fail
from services.config import BreakwaterSettings, ConfigError, load_settings


class CliState:
    def __init__(self, config: Path | None, role: str = "admin") -> None:
        self.config = config
        self.role = role
        """Whose credentials a command uses on the secure local broker (the edge and worker their own)."""

    @cached_property
    def settings(self) -> BreakwaterSettings:
        """The validated settings; a bad setting ends the command with the field's name (exit 2)."""
        try:
            settings = load_settings(self.config)
        except ConfigError as exc:
            fail(exc, ExitCode.USAGE)
        from services.cli.kafka import as_local_role  # the secure local broker's user, when it runs

        return as_local_role(settings, self.role)
