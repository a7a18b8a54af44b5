"""Memory over a long storm: does any process grow? (issue 6: under 10% over a 10-minute soak)

    .venv/bin/python -m benchmarks.soak [--minutes 10] [--rate 5]

Runs ``breakwater flood`` for ``--minutes`` of sending, then compares each process's RSS in the
second minute (after warm-up: imports, pools and caches filled) with its RSS in the last minute of
sending, from the flood's once-a-second samples. Prints a table; asserts nothing.
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


def growth(samples: list[dict[str, Any]], send_seconds: float) -> dict[str, tuple[float, float]]:
    """Process -> (median RSS MB in minute two, median RSS MB in the last sending minute)."""
    start = samples[0]["at"]
    early: dict[str, list[int]] = {}
    late: dict[str, list[int]] = {}
    for sample in samples:
        offset = sample["at"] - start
        target = early if 60 <= offset < 120 else late if send_seconds - 60 <= offset < send_seconds else None
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
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=5.0, help="normal webhooks/s; the flood is 100x")
    args = parser.parse_args()
    seconds = args.minutes * 60
    report_path = Path(tempfile.mkdtemp(prefix="soak-")) / "soak-report.json"
    command = ["-m", "services.flood", "--report", str(report_path), "--duration", str(seconds)]
    command += ["--rate", str(args.rate), "--scale", "1", "--drain", "60"]
    subprocess.run([sys.executable, *command], check=False)
    report = json.loads(report_path.read_text())
    rows = growth(report["samples"], seconds)
    print(f"\nRSS over a {args.minutes:g}-minute storm (median of minute 2 vs the last minute of sending)")
    worst = 0.0
    for name, (early, late) in sorted(rows.items()):
        change = (late - early) / early * 100
        worst = max(worst, change)
        print(f"  {name:<10} {early:8.1f} MB -> {late:8.1f} MB   {change:+6.1f}%")
    verdict = "met" if worst < 10 else "not met"
    passed = report["accounting"]["passed"]
    print(f"largest growth {worst:+.1f}% (target < 10%: {verdict}); accounting passed: {passed}")
    record("soak", minutes=args.minutes, worst_growth_pct=round(worst, 1))


if __name__ == "__main__":
    main()
