"""The JSON of operator results, as the HTTP API answers and ``--json`` prints: names, order, formats.

Clients of ``/dlq`` and ``/stats`` read this shape; the typed models behind it must not change it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from services.operators.dlq_index import DlqIndex
from services.operators.replay import ActionReport
from services.operators.stats import PartitionLag, PipelineStats
from services.operators.views import DlqListing, entry_detail, entry_summary, to_json
from tests.unit.operators.deadletters import BASE, dead_letter, dlq_records

SUMMARY = [
    "id", "state", "dead_at", "provider", "event_type", "event_id", "destination", "reason", "error_class",
    "message", "attempt",
]  # fmt: skip


def test_a_listing_writes_each_summary_with_iso_times() -> None:
    dead = dead_letter("stripe", 1)
    entry = DlqIndex.build(dlq_records([dead]), []).entries[dead.id]
    shown = to_json(DlqListing(items=[entry_summary(entry)], count=1, truncated=False))
    assert list(shown) == ["items", "count", "truncated"]
    assert list(shown["items"][0]) == SUMMARY
    assert shown["items"][0]["dead_at"] == BASE.isoformat() == "2026-11-01T12:00:00+00:00"


def test_a_detail_adds_the_whole_record_after_the_summary() -> None:
    dead, other = dead_letter("stripe", 1, attempts=2), dead_letter("stripe", 2)
    index = DlqIndex.build(dlq_records([dead, other]), [])
    shown = to_json(entry_detail(index.entries[dead.id], [index.entries[other.id]]))
    assert list(shown) == SUMMARY + [
        "location", "key", "record_headers", "envelope", "body", "final_error", "history", "mark", "related",
    ]  # fmt: skip
    assert "body" not in shown["envelope"] and "errors" not in shown["envelope"]
    assert shown["envelope"]["event_id"] == "evt_stripe_1"
    assert [list(r) for r in shown["related"]] == [SUMMARY]


def test_stats_and_reports_keep_their_names_and_order() -> None:
    since = datetime(2026, 11, 1, tzinfo=UTC)
    stats = PipelineStats(since, None, [PartitionLag("g", "t", 0, None, 5, 3)], {"stripe": 1}, {}, 90)
    shown = to_json(stats)
    assert list(shown) == [
        "since", "until", "health", "thresholds", "lag_total", "lag_by_group", "lag", "dead_by_provider",
        "quarantined_by_provider",
    ]  # fmt: skip
    assert (shown["since"], shown["lag_total"], shown["lag_by_group"]) == (since.isoformat(), 3, {"g": 3})
    assert shown["lag"] == [
        {"group": "g", "topic": "t", "partition": 0, "committed": None, "end": 5, "lag": 3, "exact": True}
    ]
    report = ActionReport("replay", False, ["a"], ["b"], [("c", "no topic")])
    assert to_json(report) == {
        "action": "replay",
        "dry_run": False,
        "done": ["a"],
        "skipped": ["b"],
        "failed": [{"id": "c", "error": "no topic"}],
    }
