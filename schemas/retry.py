"""The record on ``webhooks.retry.{tier}``: an envelope waiting to be tried again at one destination."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import WebhookEnvelope


class RetryRecord(BaseModel):
    """Re-published to ``webhooks.ready.{provider}`` for ``destination`` only, once ``not_before`` passed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    tier: str
    not_before: datetime = Field(description="earliest time of the next attempt (jittered)")
    destination: str
    envelope: WebhookEnvelope = Field(description="with the failed attempt counted and in its history")
