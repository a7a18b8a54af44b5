"""Marks on ``webhooks.dlq.state``: a dead letter was replayed or discarded, by whom and when.

The topic is compacted and keyed by dead letter id, so the latest mark per id survives; the dead
letters themselves stay untouched on ``webhooks.dlq`` (an audit trail no operator can rewrite).
A tombstone (no value) clears a mark.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["DlqMark", "decode_mark"]


class DlqMark(BaseModel):
    """Value of one record on the state topic; key = the dead letter id (``replay_of``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    state: Literal["replayed", "discarded"]
    by: str
    at: datetime
    replay_of: str = Field(description="the dead letter id this mark is about (also the record key)")
    topic: str | None = Field(default=None, description="where a replay was published")
    notes: str | None = None


def decode_mark(value: bytes | None) -> DlqMark | None:
    """The mark, or None for a tombstone or a value this version cannot read (never raises)."""
    if not value:
        return None
    try:
        return DlqMark.model_validate_json(value)
    except ValidationError:
        return None
