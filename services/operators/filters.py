"""Which dead letters an operator means: filters shared by the CLI options and the API query string.

Times are ISO 8601 (``2026-11-29T10:00:00Z``; no zone means UTC) or an age back from now
(``90s``, ``15m``, ``2h``, ``7d``), so ``--since 2h`` reads as an operator would say it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

from schemas.deadletter import DeadLetter
from services.errors import BreakwaterError

__all__ = ["FILTER_FIELDS", "STATES", "DlqFilter", "FilterError", "State", "parse_time", "reject_unknown"]

State = Literal["active", "dead", "replayed", "discarded", "all"]
"""``active``: all but discarded (the default); ``dead``: not yet replayed or discarded."""
STATES: tuple[str, ...] = get_args(State)
Mark = Literal["replayed", "discarded"] | None

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


FILTER_FIELDS: tuple[str, ...] = (
    "provider",
    "event_type",
    "error_class",
    "destination",
    "since",
    "until",
    "state",
    "limit",
)
"""Every filter's name, the same in the API (query string, JSON body) and, as ``--error-class`` and so
on, on the command line."""


class FilterError(BreakwaterError, ValueError):
    """A filter value an operator typed cannot be read; the message says which and why.

    ``field`` names the one bad field; ``unknown`` and ``accepted`` are set for names that are no field,
    so an API client can show both (the HTTP API puts them in its 400 body).
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        unknown: tuple[str, ...] = (),
        accepted: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.unknown = unknown
        self.accepted = accepted

    def details(self) -> dict[str, object]:
        """What an API answer carries beside the message."""
        found: dict[str, object] = {}
        if self.field is not None:
            found["field"] = self.field
        if self.unknown:
            found["unknown"] = list(self.unknown)
            found["accepted"] = list(self.accepted)
        return found


def parse_time(text: str, *, now: datetime | None = None, field: str | None = None) -> datetime:
    """An aware UTC datetime from ISO 8601 or an age such as ``2h`` (meaning two hours ago).

    ``field`` names the option in the message. Ages and dates outside what a datetime holds (before
    year 1, after 9999: ``1000000d``) are refused like unreadable ones, never an OverflowError.
    """
    value = text.strip()
    now = now or datetime.now(UTC)
    named = f"{field}: " if field else ""
    if value == "now":
        return now
    try:
        if match := _AGE.match(value):
            return now - timedelta(seconds=float(match[1]) * _UNITS[match[2]])
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise FilterError(
                f"{named}{text!r} is neither ISO 8601 nor an age like 15m, 2h, 7d", field=field
            ) from None
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except OverflowError:
        raise FilterError(f"{named}{text!r} is out of range (years 1 to 9999)", field=field) from None


def reject_unknown(values: Mapping[str, object], accepted: tuple[str, ...]) -> None:
    """Refuse names that are no field, naming them, a near miss, and every accepted name.

    A misspelt filter must never be dropped silently: ``{"provider": "github", "eror_class": "x"}``
    would otherwise replay or discard every GitHub dead letter.
    """
    unknown = tuple(sorted(str(name)[:60] for name in values if name not in accepted))
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, accepted, n=1)
        hints.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    raise FilterError(
        f"unknown filter(s) {', '.join(hints)}; accepted: {', '.join(accepted)}",
        unknown=unknown,
        accepted=accepted,
    )


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
            raise FilterError(f"state must be one of {', '.join(STATES)}, not {self.state!r}", field="state")
        if self.limit is not None and self.limit < 1:
            raise FilterError("limit must be at least 1", field="limit")
        if self.since and self.until and self.since > self.until:
            raise FilterError("since is after until", field="since")

    @classmethod
    def parse(cls, values: Mapping[str, str | None], *, now: datetime | None = None) -> DlqFilter:
        """From text (query string, CLI options); raises :class:`FilterError` naming the bad field."""
        reject_unknown(values, (*FILTER_FIELDS, "ids"))
        text = {k: v for k, v in values.items() if v not in (None, "")}
        limit = text.get("limit")
        limit_value = None
        if limit is not None:
            if not limit.strip().isdecimal() or len(limit.strip()) > 18:
                raise FilterError(f"limit must be a whole number from 1, not {limit[:40]!r}", field="limit")
            limit_value = int(limit)
        ids = frozenset(i for i in (text.get("ids") or "").split(",") if i)
        return cls(
            provider=text.get("provider"),
            event_type=text.get("event_type"),
            error_class=text.get("error_class"),
            destination=text.get("destination"),
            since=parse_time(text["since"], now=now, field="since") if "since" in text else None,
            until=parse_time(text["until"], now=now, field="until") if "until" in text else None,
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
