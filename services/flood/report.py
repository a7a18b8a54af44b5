"""The flood report: one JSON document with every figure, and the rich table printed from it.

The table is rendered from the JSON, never from live objects, so what a reader sees on the terminal
is exactly what the file holds (and the unit tests render a report built by hand).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

REQUIRED_FIELDS = (
    "scenario",
    "seconds",
    "requests",
    "accepted",
    "rejected_by_reason",
    "delivered",
    "duplicates_dropped",
    "retried_by_tier",
    "dead_lettered",
    "quarantined",
    "edge_latency_ms",
    "end_to_end_latency_ms",
    "peak_consumer_lag",
    "peak_rss_mb",
    "accounting",
    "timeline",
)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def latency_ms(values: Sequence[float]) -> dict[str, float | int | None]:
    """p50 and p99 in milliseconds of ``values`` in seconds, and how many there were."""
    p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
    return {
        "count": len(values),
        "p50": None if p50 is None else round(p50 * 1000, 1),
        "p99": None if p99 is None else round(p99 * 1000, 1),
    }


def end_to_end(
    received_at: Mapping[str, float], delivered_at: Mapping[str, Iterable[tuple[str, float]]]
) -> dict[str, Any]:
    """received_at (edge) → delivered, per destination and overall, first delivery per key."""
    overall: list[float] = []
    per: dict[str, Any] = {}
    for dest, rows in sorted(delivered_at.items()):
        first: dict[str, float] = {}
        for key, at in rows:
            if key in received_at and (key not in first or at < first[key]):
                first[key] = at
        values = [max(0.0, at - received_at[key]) for key, at in first.items()]
        per[dest] = latency_ms(values)
        overall += values
    return {**latency_ms(overall), "by_destination": per}


def timeline(
    start: float,
    accepted_at: Iterable[float],
    delivered_at: Iterable[float],
    lag: Iterable[tuple[float, int | None]],
) -> list[dict[str, Any]]:
    """Per second since ``start``: webhooks accepted, deliveries made (all destinations), lag sampled."""
    accepted = Counter(int(at - start) for at in accepted_at if at >= start)
    delivered = Counter(int(at - start) for at in delivered_at if at >= start)
    lags = {int(at - start): value for at, value in lag if at >= start}
    last = max([*accepted, *delivered, *lags, 0])
    return [
        {"second": s, "accepted": accepted.get(s, 0), "delivered": delivered.get(s, 0), "lag": lags.get(s)}
        for s in range(last + 1)
    ]


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()) or "0"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def summary_table(report: Mapping[str, Any]) -> Table:
    """The rich table of a report's headline figures."""
    table = Table(title="breakwater flood", show_lines=False)
    table.add_column("measure", style="bold")
    table.add_column("value", overflow="fold")
    requests = report["requests"]
    edge, e2e = report["edge_latency_ms"], report["end_to_end_latency_ms"]
    rows = [
        ("requests sent", f"{_fmt(requests['sent'])} in {_fmt(report['seconds']['send'])} s"),
        *(
            (
                f"  {name}",
                f"{_fmt(p['sent'])} of {_fmt(p['planned'])} planned;"
                f" {_fmt(p['achieved_rate'])}/s of {_fmt(p['target_rate'])}/s target",
            )
            for name, p in requests.get("by_phase", {}).items()
        ),
        ("answered by status", _fmt(requests["statuses"])),
        ("dropped connections", _fmt(requests["dropped"])),
        (
            "accepted (202)",
            f"{_fmt(report['accepted']['responses'])} ({_fmt(report['accepted']['unique'])} unique)",
        ),
        ("rejected by reason", _fmt(report["rejected_by_reason"])),
        ("delivered", _fmt(report["delivered"])),
        ("duplicates dropped", _fmt(report["duplicates_dropped"])),
        ("retried by tier", _fmt(report["retried_by_tier"])),
        ("dead-lettered", _fmt(report["dead_lettered"])),
        ("quarantined", _fmt(report["quarantined"])),
        *(
            (f"  {dest} answered", _fmt(statuses))
            for dest, statuses in sorted(report.get("simulator_statuses", {}).items())
        ),
        ("edge latency p50 / p99", f"{_fmt(edge['p50'])} / {_fmt(edge['p99'])} ms"),
        ("end-to-end p50 / p99", f"{_fmt(e2e['p50'])} / {_fmt(e2e['p99'])} ms"),
    ]
    for dest, figures in e2e.get("by_destination", {}).items():
        rows.append((f"  e2e {dest}", f"{_fmt(figures['p50'])} / {_fmt(figures['p99'])} ms"))
    rows += [
        ("peak consumer lag", _fmt(report["peak_consumer_lag"])),
        ("peak RSS (MB)", _fmt(report["peak_rss_mb"])),
    ]
    if (dedup := report.get("worker_dedup_memory_mb")) and dedup["peak"] is not None:
        budget = f"peak {dedup['peak']:g} MB of its {dedup['budget']} MB budget"
        rows.append(("  worker's dedup RocksDB", budget))
    for label, value in rows:
        table.add_row(label, value)
    accounting = report["accounting"]
    for dest, row in accounting["destinations"].items():
        verdict = "[green]pass[/green]" if row["passed"] else "[red]FAIL[/red]"
        table.add_row(
            f"accounting {dest}",
            f"{verdict} routed {row['routed']:,} = delivered {row['delivered']:,}"
            f" + dead {row['dead_lettered']:,}"
            f" + quarantined {row['quarantined']:,} + in flight {row['in_flight']:,}"
            f" (lost {row['lost']}, double {row['double']}, phantom {row['phantom']},"
            f" redelivered {row['redelivered']})",
        )
    verdict = "[green]PASS[/green]" if accounting["passed"] else "[red]FAIL[/red]"
    table.add_row(
        "accounting check",
        f"{verdict} (dropped {accounting['dropped_connections']},"
        f" unexpected {_fmt(accounting['unexpected_statuses'])})",
    )
    return table


def print_summary(report: Mapping[str, Any], console: Console | None = None) -> None:
    (console or Console()).print(summary_table(report))
