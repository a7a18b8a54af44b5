"""A PNG of the flood over time: accepted and delivered a second, and consumer lag.

matplotlib comes with the ``tooling`` extra, which ``breakwater flood`` checks for before it starts.
The Agg backend draws without a display, which CI machines and SSH sessions do not have.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use("Agg"): pyplot picks its backend on import


def draw(
    timeline: Sequence[Mapping[str, Any]],
    path: Path,
    title: str = "breakwater flood",
    marks: Mapping[str, float] | None = None,
) -> Path:
    """Write the plot to ``path`` (``marks``: label → second, e.g. where each phase ends)."""
    seconds = [row["second"] for row in timeline]
    figure, rates = plt.subplots(figsize=(10, 5))
    rates.plot(seconds, [row["accepted"] for row in timeline], label="accepted /s", color="tab:blue")
    rates.plot(seconds, [row["delivered"] for row in timeline], label="delivered /s", color="tab:green")
    for label, second in (marks or {}).items():
        rates.axvline(second, color="grey", linestyle=":", linewidth=1)
        rates.annotate(label, (second, 0), xytext=(3, 3), textcoords="offset points", color="grey")
    rates.set_xlabel("seconds since sending started")
    rates.set_ylabel("webhooks a second")
    lag_axis = rates.twinx()
    lagged = [(row["second"], row["lag"]) for row in timeline if row["lag"] is not None]
    lag_axis.plot(
        [s for s, _ in lagged], [v for _, v in lagged], label="consumer lag", color="tab:red", linestyle="--"
    )
    lag_axis.set_ylabel("consumer lag (records)")
    handles = rates.get_legend_handles_labels()
    lag_handles = lag_axis.get_legend_handles_labels()
    rates.legend(handles[0] + lag_handles[0], handles[1] + lag_handles[1], loc="upper right")
    rates.set_title(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
