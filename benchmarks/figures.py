"""Benchmarks print for people; with ``BREAKWATER_BENCH_FIGURES=path`` they also append their figures
to a JSON file, which ``benchmarks/bench_all.py`` (``make bench``) gathers into one table."""

from __future__ import annotations

import json
import os
from pathlib import Path

ENV = "BREAKWATER_BENCH_FIGURES"


def record(benchmark: str, **figures: float | int | str) -> None:
    """Merge ``figures`` under ``benchmark`` into the file named by the environment, if any."""
    target = os.environ.get(ENV)
    if not target:
        return
    path = Path(target)
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault(benchmark, {}).update(figures)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
