"""What the worker shows the outside: its counters as OpenTelemetry metrics, and its probes.

Instruments are registered once per process (OpenTelemetry's are process-wide) and report the sum
over every worker run attached to them: one in a deployed process, several in a test process.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from services.config import BreakwaterSettings
from services.probes import serving_probes
from services.telemetry import export_counters, export_gauge, setup_telemetry
from streams.dedup_store import StoreMemory
from streams.eos import WAITING_FOR_ASSIGNMENT, TransactionalLoop
from streams.metrics import Metrics


def attach(settings: BreakwaterSettings, metrics: Metrics) -> None:
    """Export ``metrics`` (and record end-to-end latency from it) for this process."""
    telemetry = setup_telemetry(settings.telemetry, "worker")
    export_counters(telemetry.meter, lambda: metrics)
    metrics.on_delivered = telemetry.end_to_end_latency.record


def watch_store_memory(settings: BreakwaterSettings, memory: StoreMemory) -> None:
    """Export what the dedup table's RocksDB holds in memory: the part of RSS that fills to a budget."""
    telemetry = setup_telemetry(settings.telemetry, "worker")
    description = "memory the dedup table's RocksDB holds (memtables, block cache): up to dedup_memory_mb"
    export_gauge(telemetry.meter, "breakwater.dedup.memory", memory.usage, description)


@contextlib.asynccontextmanager
async def worker_probes(
    settings: BreakwaterSettings, loops: Sequence[TransactionalLoop]
) -> AsyncIterator[None]:
    """``/healthz``, ``/readyz`` and ``/metrics`` when a port is set.

    Ready means every loop has its assignment, knows its group coordinator, opened its partitions and
    has no Kafka failure outstanding: while Kafka is unreachable the worker says so.
    """
    port = settings.pipeline.probe_port
    if port is None:
        yield
        return

    async def ready() -> tuple[bool, dict[str, object]]:
        states = {loop.config.name: loop.ready() for loop in loops}
        waiting = [name for name, (_, why) in states.items() if why == WAITING_FOR_ASSIGNMENT]
        not_ready = {name: why for name, (ok, why) in states.items() if not ok}
        return not not_ready, {"loops": len(loops), "waiting_for_assignment": waiting, "not_ready": not_ready}

    async with serving_probes("worker", settings.pipeline.probe_host, port, ready):
        yield
