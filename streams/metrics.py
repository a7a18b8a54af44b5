"""Counters the worker keeps and logs; tests read the topics, operators read these lines.

``streams/observability.py`` exports them for Prometheus and OTLP at collection time, so counting
stays a dict increment on the hot path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime


class Metrics(Counter[str]):
    """``metrics["dedup.duplicate"] += 1``; one instance per worker, shared by its loops."""

    on_delivered: Callable[[float], None] | None = None
    """Called with the seconds from the edge's receipt to a delivery (the end-to-end latency)."""

    def line(self) -> str:
        return " ".join(f"{name}={value}" for name, value in sorted(self.items()))

    def delivered(self, destination: str, received_at: datetime) -> None:
        self[f"dispatch.delivered.{destination}"] += 1
        if self.on_delivered is not None:
            self.on_delivered((datetime.now(UTC) - received_at).total_seconds())
