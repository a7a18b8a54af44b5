"""Settings of the operator HTTP API (meant to sit at ``BreakwaterSettings.operators``)."""

from __future__ import annotations

from pydantic import Field

from services.secrets import Secret
from services.settings_base import Section

__all__ = ["OperatorSettings"]


class OperatorSettings(Section):
    """Where the operator API listens and the bearer token it demands.

    No token means every protected route answers 401: an API that replays events must never be open
    by omission. The token is a secret reference like every other (``env:NAME``, ``file:PATH``).
    """

    token: Secret | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=1, le=65535)
    scan_limit: int = Field(default=200_000, ge=1)
    """Most records read from each topic to build the in-memory DLQ index for one request."""
