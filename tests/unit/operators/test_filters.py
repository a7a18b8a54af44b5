"""Filter parsing: what an operator types becomes exactly the filter meant, or a message naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.operators.filters import DlqFilter, FilterError, parse_time
from tests.unit.operators.deadletters import dead_letter

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW - timedelta(seconds=90)),
        ("15m", NOW - timedelta(minutes=15)),
        ("2h", NOW - timedelta(hours=2)),
        ("1.5d", NOW - timedelta(hours=36)),
        ("1w", NOW - timedelta(days=7)),
        ("now", NOW),
        ("2026-11-01T10:00:00Z", datetime(2026, 11, 1, 10, tzinfo=UTC)),
        ("2026-11-01T10:00:00", datetime(2026, 11, 1, 10, tzinfo=UTC)),
        ("2026-11-01T10:00:00+02:00", datetime(2026, 11, 1, 8, tzinfo=UTC)),
    ],
)
def test_times_are_iso_or_ages(text: str, expected: datetime) -> None:
    assert parse_time(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "2h ago", "-3h", "12", ""])
def test_unreadable_times_say_so(text: str) -> None:
    with pytest.raises(FilterError, match="ISO 8601"):
        parse_time(text, now=NOW)


def test_parse_reads_every_field() -> None:
    parsed = DlqFilter.parse(
        {
            "provider": "stripe",
            "event_type": "charge.failed",
            "error_class": "http_500",
            "destination": "sink",
            "since": "2h",
            "until": "now",
            "state": "all",
            "limit": "10",
            "ids": "a,b",
        },
        now=NOW,
    )
    assert parsed == DlqFilter(
        provider="stripe",
        event_type="charge.failed",
        error_class="http_500",
        destination="sink",
        since=NOW - timedelta(hours=2),
        until=NOW,
        state="all",
        limit=10,
        ids=frozenset({"a", "b"}),
    )


def test_empty_values_mean_unset() -> None:
    assert DlqFilter.parse({"provider": "", "limit": None}) == DlqFilter()
    assert not DlqFilter().narrows
    assert DlqFilter(provider="stripe").narrows
    assert DlqFilter(ids=frozenset({"x"})).narrows


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"limit": "ten"}, "limit must be a whole number"),
        ({"limit": "0"}, "limit must be at least 1"),
        ({"state": "gone"}, "state must be one of"),
        ({"since": "1h", "until": "2h"}, "since is after until"),
        ({"colour": "red"}, "unknown filter"),
    ],
)
def test_bad_values_name_the_field(values: dict[str, str | None], message: str) -> None:
    with pytest.raises(FilterError, match=message):
        DlqFilter.parse(values, now=NOW)


def test_matches_each_field_and_state() -> None:
    dead = dead_letter("stripe", 1, error_class="http_500", destination="sink", hours=1)
    at = dead.dead_at
    assert DlqFilter(provider="stripe", error_class="http_500", destination="sink").matches(dead, None)
    assert not DlqFilter(provider="github").matches(dead, None)
    assert not DlqFilter(event_type="other").matches(dead, None)
    assert not DlqFilter(error_class="timeout").matches(dead, None)
    assert not DlqFilter(destination="events").matches(dead, None)
    assert DlqFilter(since=at, until=at).matches(dead, None)  # bounds are inclusive
    assert not DlqFilter(since=at + timedelta(microseconds=1)).matches(dead, None)
    assert not DlqFilter(until=at - timedelta(microseconds=1)).matches(dead, None)
    assert not DlqFilter(ids=frozenset({"other"})).matches(dead, None)
    expectations = {
        "active": (True, True, False),
        "dead": (True, False, False),
        "replayed": (False, True, False),
        "discarded": (False, False, True),
        "all": (True, True, True),
    }
    for state, expected in expectations.items():
        got = tuple(DlqFilter(state=state).matches(dead, m) for m in (None, "replayed", "discarded"))  # type: ignore[arg-type]
        assert got == expected, state
