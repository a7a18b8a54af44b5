"""Report figures and rendering from a hand-built report: percentiles, timeline, the table."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console

from services.flood.accounting import Observed, account
from services.flood.plot import draw
from services.flood.report import REQUIRED_FIELDS, end_to_end, latency_ms, percentile, summary_table, timeline


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50 and percentile(values, 0.99) == 99 and percentile([], 0.5) is None
    assert latency_ms([0.010, 0.020, 0.030]) == {"count": 3, "p50": 20.0, "p99": 30.0}


def test_end_to_end_takes_each_keys_first_delivery() -> None:
    received = {"a": 100.0, "b": 100.0}
    delivered = {"events": [("a", 100.5), ("b", 101.0)], "hook": [("a", 103.0), ("a", 102.0)]}
    figures = end_to_end(received, delivered)
    assert figures["by_destination"]["hook"] == {"count": 1, "p50": 2000.0, "p99": 2000.0}
    assert figures["count"] == 3 and figures["p99"] == 2000.0


def test_timeline_buckets_by_second_since_start() -> None:
    rows = timeline(10.0, [10.1, 10.9, 12.0], [11.5], [(10.2, 5), (11.2, None), (12.1, 0)])
    assert rows == [
        {"second": 0, "accepted": 2, "delivered": 0, "lag": 5},
        {"second": 1, "accepted": 0, "delivered": 1, "lag": None},
        {"second": 2, "accepted": 1, "delivered": 0, "lag": 0},
    ]


def sample_report() -> dict[str, Any]:
    accounting = account(
        Observed(
            {"s:1": "t"},
            frozenset({"s:1"}),
            {"events": Counter({"s:1": 1})},
            {},
            frozenset(),
            {},
        ),
        lambda provider, event_type: ["events"],
    )
    return {
        "scenario": {},
        "seconds": {"send": 30.0, "drain": 5.0},
        "requests": {
            "sent": 3,
            "statuses": {"202": 2, "401": 1},
            "dropped": 0,
            "by_phase": {"flood": {"planned": 5, "sent": 3, "target_rate": 500.0, "achieved_rate": 300.0}},
        },
        "accepted": {"responses": 2, "unique": 1},
        "rejected_by_reason": {"401 stale_timestamp": 1},
        "delivered": {"events": 1},
        "duplicates_dropped": 1,
        "retried_by_tier": {"1s": 0},
        "dead_lettered": {},
        "quarantined": 0,
        "edge_latency_ms": {"count": 3, "p50": 3.0, "p99": 9.0},
        "end_to_end_latency_ms": {"count": 1, "p50": 50.0, "p99": 50.0, "by_destination": {}},
        "peak_consumer_lag": 12,
        "peak_rss_mb": {"edge": 80},
        "accounting": accounting.as_json(),
        "timeline": [{"second": 0, "accepted": 2, "delivered": 1, "lag": 12}],
    }


def test_summary_table_shows_every_headline_figure_and_the_verdict() -> None:
    report = sample_report()
    assert set(REQUIRED_FIELDS) <= set(report)
    out = io.StringIO()
    Console(file=out, width=200).print(summary_table(json.loads(json.dumps(report))))
    text = out.getvalue()
    for label in (
        "3 of 5 planned; 300.0/s of 500.0/s target",
        "401 stale_timestamp 1",
        "duplicates dropped",
        "3.0 / 9.0 ms",
        "edge 80",
        "PASS",
    ):
        assert label in text
    assert "routed 1 = delivered 1 + dead 0 + quarantined 0 + in flight 0" in text


def test_plot_is_written_beside_the_report(tmp_path: Path) -> None:
    path = draw(sample_report()["timeline"] * 3, tmp_path / "flood-report.png")
    assert path is not None and path.stat().st_size > 1000
