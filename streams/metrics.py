"""Counters the worker keeps and logs; tests read the topics, operators read these lines."""

from __future__ import annotations

from collections import Counter


class Metrics(Counter[str]):
    """``metrics["dedup.duplicate"] += 1``; one instance per worker, shared by its loops."""

    def line(self) -> str:
        return " ".join(f"{name}={value}" for name, value in sorted(self.items()))
