"""Samples the pipeline once a second while the flood runs: consumer lag, each process's RSS, and the
memory the worker's dedup table holds.

Lag is read the way operators read it (:func:`services.operators.stats.consumer_lag`), so the peak in
the report is the number an operator would have seen. RSS comes from psutil (the ``tooling`` extra). The
dedup table's memory is the worker's own gauge (``breakwater_dedup_memory_bytes`` on its ``/metrics``):
RocksDB's memtables and block cache fill up to ``dedup_memory_mb`` by design, and a soak has to tell
that bounded fill from growth that has no bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import psutil
from aiokafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families

from schemas.topics import QueueGroup
from services.kafka.clients import KafkaTarget
from services.operators.stats import consumer_lag

log = logging.getLogger(__name__)


@dataclass
class Sample:
    at: float
    lag: int | None
    lag_by_group: dict[str, int]
    rss: dict[str, int]
    dedup_memory: int | None = None


@dataclass
class Monitor:
    """Call :meth:`run` as a task; ``samples`` grows until ``stop`` is set."""

    kafka: KafkaTarget
    queues: list[QueueGroup]
    pids: Callable[[], dict[str, int]]
    worker_metrics_url: str | None = None
    interval: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    last_lag: int | None = None
    _http: httpx.AsyncClient = field(
        init=False, repr=False, default_factory=lambda: httpx.AsyncClient(timeout=2.0)
    )

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            started = loop.time()
            self.samples.append(await self.sample())
            remaining = self.interval - (loop.time() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, remaining))

    async def close(self) -> None:
        await self._http.aclose()

    async def sample(self) -> Sample:
        lag: int | None = None
        by_group: dict[str, int] = {}
        try:
            for row in await consumer_lag(self.kafka, self.queues):
                by_group[row.group] = by_group.get(row.group, 0) + row.lag
            lag = sum(by_group.values())
        except (KafkaError, OSError, TimeoutError) as exc:  # a busy broker: a gap, not a failure
            log.debug("lag sample failed: %s", exc)
        self.last_lag = lag
        return Sample(time.time(), lag, by_group, rss_of(self.pids()), await self.dedup_memory())

    async def dedup_memory(self) -> int | None:
        """The worker's ``breakwater_dedup_memory_bytes`` now; ``None`` while it does not answer."""
        if self.worker_metrics_url is None:
            return None
        try:
            response = await self._http.get(self.worker_metrics_url)
        except httpx.HTTPError:  # starting or stopped: a gap, not a failure
            return None
        for family in text_string_to_metric_families(response.text):
            if family.name == "breakwater_dedup_memory_bytes":
                return int(sum(sample.value for sample in family.samples))
        return None

    def peak_dedup_memory(self) -> int | None:
        values = [s.dedup_memory for s in self.samples if s.dedup_memory is not None]
        return max(values) if values else None

    def peak_lag(self) -> int | None:
        values = [s.lag for s in self.samples if s.lag is not None]
        return max(values) if values else None

    def peak_rss(self) -> dict[str, int]:
        peaks: dict[str, int] = {}
        for sample in self.samples:
            for name, rss in sample.rss.items():
                peaks[name] = max(peaks.get(name, 0), rss)
        return peaks

    def as_json(self) -> list[dict[str, Any]]:
        return [asdict(sample) for sample in self.samples]


def rss_of(pids: dict[str, int]) -> dict[str, int]:
    """Resident bytes per named process (with its children, e.g. uvicorn's); a process gone is left out."""
    found: dict[str, int] = {}
    for name, pid in pids.items():
        try:
            process = psutil.Process(pid)
            total = process.memory_info().rss
            total += sum(child.memory_info().rss for child in process.children(recursive=True))
        except psutil.Error:
            continue
        found[name] = total
    return found
