"""``make bench``: every benchmark and the storm, one after another, then one table of figures.

Each figure stands beside the baseline measured in the same run (a bare ASGI app, a raw aiokafka
transactional loop, a bare httpx call) and the target from the issues. Benchmarks run one at a time,
because on a 2-core machine two of them would measure each other.

    .venv/bin/python -m benchmarks.bench_all [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.children import run_to_end
from benchmarks.figures import ENV


def run(figures: Path, *command: str) -> None:
    print(f"$ {' '.join(command)}", flush=True)
    run_to_end([sys.executable, *command], env={**os.environ, ENV: str(figures)})


def verdict(ok: bool) -> str:
    return "[green]met[/green]" if ok else "[red]not met[/red]"


def table(data: dict[str, Any], flood: dict[str, Any] | None) -> Table:
    out = Table(title="Breakwater benchmarks (same run, same machine)")
    for column in ("figure", "value", "baseline (same run)", "ratio", "target", ""):
        out.add_column(column)
    edge = data.get("edge")
    if edge:
        out.add_row(
            "edge accepted/s (Stripe, acks=all)",
            f"{edge['accepted_per_s']:,}",
            f"bare ASGI {edge['bare_per_s']:,}",
            f"{edge['accepted_per_s'] / edge['bare_per_s']:.2f}x",
            ">= 5,000/s",
            verdict(edge["accepted_per_s"] >= 5000),
        )
        out.add_row(
            "edge p50 / p99",
            f"{edge['p50_ms']} / {edge['p99_ms']} ms",
            f"bare p99 {edge['bare_p99_ms']} ms",
            "",
            "p99 <= 50 ms",
            verdict(edge["p99_ms"] <= 50),
        )
        if "edge_cpu_us" in edge:
            out.add_row(
                "edge CPU per request",
                f"{edge['edge_cpu_us']} us",
                f"{edge['cores_busy']} of {os.cpu_count()} cores busy",
                "",
                "",
                "",
            )
    pipeline = data.get("pipeline")
    if pipeline:
        ratio = pipeline["inbound_per_s"] / pipeline["raw_per_s"]
        out.add_row(
            f"pipeline events/s ({pipeline['events']:,} backlog)",
            f"{pipeline['unique_delivered_per_s']:,} unique ({pipeline['inbound_per_s']:,} inbound)",
            f"raw EOS loop {pipeline['raw_per_s']:,}",
            f"{ratio:.0%}",
            ">= 5,000/s, >= 50%",
            verdict(pipeline["unique_delivered_per_s"] >= 5000 and ratio >= 0.5),
        )
        out.add_row(
            "worker peak RSS",
            f"{pipeline['peak_rss_mb']} MB",
            "",
            "",
            "< 500 MB",
            verdict(pipeline["peak_rss_mb"] < 500),
        )
    outbound = data.get("outbound")
    if outbound:
        ratio = outbound["client_us"] / outbound["bare_us"]
        out.add_row(
            "outbound call (limiter, breaker, retries)",
            f"{outbound['client_us']} us",
            f"bare httpx {outbound['bare_us']} us",
            f"{ratio:.2f}x",
            "<= 1.2x",
            verdict(ratio <= 1.2),
        )
    if flood:
        requests = flood["requests"]
        answered_ok = requests["dropped"] == 0
        out.add_row(
            "storm: requests answered 202/401/429/503",
            f"{requests['sent']:,} sent, {requests['dropped']} dropped",
            "",
            "",
            "never a dropped connection",
            verdict(answered_ok),
        )
        out.add_row(
            "storm: accounting (nothing lost, nothing twice)",
            "pass" if flood["accounting"]["passed"] else "FAIL",
            "",
            "",
            "pass",
            verdict(flood["accounting"]["passed"]),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (a first look, not figures)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-all-"))
    figures = work / "figures.json"
    run(figures, "-m", "benchmarks.bench_edge", "--seconds", "5" if args.quick else "15")
    run(figures, "-m", "benchmarks.bench_pipeline", "--events", "100000" if args.quick else "1000000")
    run(figures, "-m", "benchmarks.bench_outbound")
    report = work / "flood-report.json"
    run(
        figures,
        "-m",
        "services.cli.main",
        "flood",
        "--report",
        str(report),
        *(["--scale", "0.2"] if args.quick else []),
    )
    data = json.loads(figures.read_text()) if figures.exists() else {}
    flood = json.loads(report.read_text()) if report.exists() else None
    Console(width=140).print(table(data, flood))
    print(f"figures: {figures}; storm report and plot: {report.with_suffix('')}.*")


if __name__ == "__main__":
    main()
