"""Which dead letters an operator means: filters shared by the CLI options and the API query string.

Times are ISO 8601 (``2026-11-29T10:00:00Z``; no zone means UTC) or an age back from now
(``90s``, ``15m``, ``2h``, ``7d``), so ``--since 2h`` reads as an operator would say it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

from schemas.deadletter import DeadLetter

__all__ = ["STATES", "DlqFilter", "FilterError", "State", "parse_time"]

State = Literal["active", "dead", "replayed", "discarded", "all"]
"""``active``: all but discarded (the default); ``dead``: not yet replayed or discarded."""
STATES: tuple[str, ...] = get_args(State)
Mark = Literal["replayed", "discarded"] | None

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class FilterError(ValueError):
    """A filter value an operator typed cannot be read; the message says which and why."""


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """An aware datetime from ISO 8601 or an age such as ``2h`` (meaning two hours ago)."""
    value = text.strip()
    now = now or datetime.now(UTC)
    if value == "now":
        return now
    if match := _AGE.match(value):
        return now - timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"{text!r} is neither ISO 8601 nor an age like 15m, 2h, 7d") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class DlqFilter:
    """Every set field must match; ``limit`` caps the result (newest first)."""

    provider: str | None = None
    event_type: str | None = None
    error_class: str | None = None
    destination: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    state: State = "active"
    limit: int | None = None
    ids: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise FilterError(f"state must be one of {', '.join(STATES)}, not {self.state!r}")
        if self.limit is not None and self.limit < 1:
            raise FilterError("limit must be at least 1")
        if self.since and self.until and self.since > self.until:
            raise FilterError("since is after until")

    @classmethod
    def parse(cls, values: Mapping[str, str | None], *, now: datetime | None = None) -> DlqFilter:
        """From text (query string, CLI options); raises :class:`FilterError` naming the bad field."""
        known = {"provider", "event_type", "error_class", "destination", "since", "until", "state", "limit"}
        unknown = sorted(set(values) - known - {"ids"})
        if unknown:
            raise FilterError(f"unknown filter(s): {', '.join(unknown)}")
        text = {k: v for k, v in values.items() if v not in (None, "")}
        limit = text.get("limit")
        try:
            limit_value = int(limit) if limit is not None else None
        except ValueError:
            raise FilterError(f"limit must be a whole number, not {limit!r}") from None
        ids = frozenset(i for i in (text.get("ids") or "").split(",") if i)
        return cls(
            provider=text.get("provider"),
            event_type=text.get("event_type"),
            error_class=text.get("error_class"),
            destination=text.get("destination"),
            since=parse_time(text["since"], now=now) if "since" in text else None,
            until=parse_time(text["until"], now=now) if "until" in text else None,
            state=text.get("state", "active"),  # type: ignore[arg-type]  # checked in __post_init__
            limit=limit_value,
            ids=ids,
        )

    @property
    def narrows(self) -> bool:
        """True when something beyond state and limit is set (replaying "everything" needs this)."""
        fields = (self.provider, self.event_type, self.error_class, self.destination, self.since, self.until)
        return bool(self.ids) or any(f is not None for f in fields)

    def matches(self, dead: DeadLetter, mark: Mark) -> bool:
        if self.ids and dead.id not in self.ids:
            return False
        if not self._state_matches(mark):
            return False
        envelope = dead.envelope
        return (
            (self.provider is None or envelope.provider == self.provider)
            and (self.event_type is None or envelope.event_type == self.event_type)
            and (self.error_class is None or dead.final_error.error_class == self.error_class)
            and (self.destination is None or dead.destination == self.destination)
            and (self.since is None or dead.dead_at >= self.since)
            and (self.until is None or dead.dead_at <= self.until)
        )

    def _state_matches(self, mark: Mark) -> bool:
        if self.state == "all":
            return True
        if self.state == "active":
            return mark != "discarded"
        if self.state == "dead":
            return mark is None
        return mark == self.state
