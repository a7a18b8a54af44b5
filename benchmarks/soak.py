"""Memory over a long storm: does any process grow? (issue 6: under 10% over a 10-minute soak)

    .venv/bin/python -m benchmarks.soak [--minutes 10] [--rate 500]

Runs ``breakwater flood`` with ``--minutes`` of flood at ``--rate`` webhooks a second (after its
normal phase, half as long), then compares each process's RSS in the flood's second minute (warm:
pools, caches and queues filled) with its RSS in the flood's last minute, from the flood's
once-a-second samples. The verdict counts Breakwater's processes (broker, edge, worker), not the flood's
own measuring tools. Prints a table; asserts nothing.

The worker's dedup table (RocksDB) fills its block cache and memtables up to ``dedup_memory_mb`` (64 MB
by default) as the table grows: a fill with a configured bound, which ten minutes at 500/s do not reach.
The worker's gauge of that memory is sampled with RSS, so the table shows the worker's RSS both whole
and without it; the verdict counts the worker without it, the part that has no configured bound.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.children import run_to_end
from benchmarks.figures import record

# The processes the target is about; the flood's load generator and destination simulator keep every
# latency sample and delivery they see (the report needs them), so they grow by design.
BREAKWATER = frozenset({"broker", "edge", "worker"})
DEDUP = "worker's dedup RocksDB"
WORKER_NET = "worker without it"
JUDGED = frozenset({"broker", "edge", WORKER_NET})


def series(sample: dict[str, Any]) -> dict[str, int]:
    """Bytes per row of the table in one sample: each process's RSS, and the worker's split in two."""
    rows = dict(sample.get("rss") or {})
    dedup = sample.get("dedup_memory")
    if dedup is not None and "worker" in rows:
        rows[DEDUP] = dedup
        rows[WORKER_NET] = rows["worker"] - dedup
    return rows


def growth(
    samples: list[dict[str, Any]], flood_from: float, flood_to: float
) -> dict[str, tuple[float, float]]:
    """Row -> (median MB in the flood's minute two, median MB in its last minute)."""
    start = samples[0]["at"]
    early: dict[str, list[int]] = {}
    late: dict[str, list[int]] = {}
    for sample in samples:
        offset = sample["at"] - start
        in_early = flood_from + 60 <= offset < flood_from + 120
        target = early if in_early else late if flood_to - 60 <= offset < flood_to else None
        if target is not None:
            for name, value in series(sample).items():
                target.setdefault(name, []).append(value)
    return {
        name: (statistics.median(early[name]) / 2**20, statistics.median(late[name]) / 2**20)
        for name in early
        if name in late
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of flood")
    parser.add_argument("--rate", type=float, default=500.0, help="flood webhooks a second")
    args = parser.parse_args()
    flood = args.minutes * 60
    send = flood * 1.5  # the flood's schedule: a third of the time normal, then the flood
    scale = args.rate * flood / 30_000  # lift the flood's count cap to rate x duration
    report_path = Path(tempfile.mkdtemp(prefix="soak-")) / "soak-report.json"
    command = ["-m", "services.cli.main", "flood", "--report", str(report_path), "--duration", str(send)]
    command += ["--rate", str(args.rate / 100 / scale), "--scale", str(scale), "--drain", "60"]
    command += ["--keep-temp"]  # the worker's and edge's logs: a soak that grows or stalls needs them
    run_to_end([sys.executable, *command])
    report = json.loads(report_path.read_text())
    sent_for = report["seconds"]["send"]
    rows = growth(report["samples"], sent_for / 3, sent_for)
    print(f"\nRSS over {args.minutes:g} minutes of flood (median of its minute 2 vs its last minute)")
    judged = JUDGED if WORKER_NET in rows else BREAKWATER
    worst = 0.0
    for name, (early, late) in sorted(rows.items(), key=lambda row: _order(row[0])):
        change = (late - early) / early * 100
        if name in judged:
            worst = max(worst, change)
        print(f"  {name:<22} {early:8.1f} MB -> {late:8.1f} MB   {change:+6.1f}%{_role(name, judged)}")
    verdict = "met" if worst < 10 else "not met"
    passed = report["accounting"]["passed"]
    counted = ", ".join(sorted(judged))
    print(f"largest growth of {counted}: {worst:+.1f}% (target < 10%: {verdict})")
    print(f"accounting passed: {passed}")
    record("soak", minutes=args.minutes, worst_growth_pct=round(worst, 1))


def _order(name: str) -> tuple[int, str]:
    return (1, name) if name in (DEDUP, WORKER_NET) else (0, name)


def _role(name: str, judged: frozenset[str]) -> str:
    if name in judged:
        return ""
    if name == DEDUP:
        return "  (fills up to dedup_memory_mb by design: not counted)"
    if name == "worker":
        return "  (whole; counted below without its dedup table)"
    return "  (measuring tool: keeps every sample, not counted)"


if __name__ == "__main__":
    main()
