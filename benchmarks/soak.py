"""Memory over a long storm: does any process grow? (issue 6: under 10% over a 10-minute soak)

    .venv/bin/python -m benchmarks.soak [--minutes 10] [--rate 500]

Runs ``breakwater flood`` with ``--minutes`` of flood at ``--rate`` webhooks a second (after its
normal phase, half as long), then compares each process's RSS in the flood's second minute (warm:
pools, caches and queues filled) with its RSS in the flood's last minute, from the flood's
once-a-second samples. The verdict counts Breakwater's processes (broker, edge, worker), not the flood's
own measuring tools. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.figures import record

# The processes the target is about; the flood's load generator and destination simulator keep every
# latency sample and delivery they see (the report needs them), so they grow by design.
BREAKWATER = frozenset({"broker", "edge", "worker"})


def growth(
    samples: list[dict[str, Any]], flood_from: float, flood_to: float
) -> dict[str, tuple[float, float]]:
    """Process -> (median RSS MB in the flood's minute two, median RSS MB in its last minute)."""
    start = samples[0]["at"]
    early: dict[str, list[int]] = {}
    late: dict[str, list[int]] = {}
    for sample in samples:
        offset = sample["at"] - start
        in_early = flood_from + 60 <= offset < flood_from + 120
        target = early if in_early else late if flood_to - 60 <= offset < flood_to else None
        if target is not None:
            for name, rss in (sample.get("rss") or {}).items():
                target.setdefault(name, []).append(rss)
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
    command = ["-m", "services.flood", "--report", str(report_path), "--duration", str(send)]
    command += ["--rate", str(args.rate / 100 / scale), "--scale", str(scale), "--drain", "60"]
    command += ["--keep-temp"]  # the worker's and edge's logs: a soak that grows or stalls needs them
    subprocess.run([sys.executable, *command], check=False)
    report = json.loads(report_path.read_text())
    sent_for = report["seconds"]["send"]
    rows = growth(report["samples"], sent_for / 3, sent_for)
    print(f"\nRSS over {args.minutes:g} minutes of flood (median of its minute 2 vs its last minute)")
    worst = 0.0
    for name, (early, late) in sorted(rows.items()):
        change = (late - early) / early * 100
        if name in BREAKWATER:
            worst = max(worst, change)
        role = "" if name in BREAKWATER else "  (measuring tool: keeps every sample, not counted)"
        print(f"  {name:<10} {early:8.1f} MB -> {late:8.1f} MB   {change:+6.1f}%{role}")
    verdict = "met" if worst < 10 else "not met"
    passed = report["accounting"]["passed"]
    print(f"largest growth of broker, edge, worker {worst:+.1f}% (target < 10%: {verdict})")
    print(f"accounting passed: {passed}")
    record("soak", minutes=args.minutes, worst_growth_pct=round(worst, 1))


if __name__ == "__main__":
    main()
