"""What the worker shows the outside: its counters as OpenTelemetry metrics, and its probes.

Metrics are registered once per process (OpenTelemetry's instruments are process-wide); each worker
run attaches its own :class:`Metrics`, which is what tests that start several in-process workers need.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from services.config import BreakwaterSettings
from services.probes import serving_probes
from services.telemetry import Telemetry, export_counters, setup_telemetry
from streams.eos import TransactionalLoop
from streams.metrics import Metrics

_attached = Metrics()
_telemetry: Telemetry | None = None


def attach(settings: BreakwaterSettings, metrics: Metrics) -> None:
    """Export ``metrics`` (and record end-to-end latency from it) for this process."""
    global _attached, _telemetry
    if _telemetry is None:
        _telemetry = setup_telemetry(settings.telemetry, "worker")
        export_counters(_telemetry.meter, lambda: _attached)
    _attached = metrics
    metrics.on_delivered = _telemetry.end_to_end_latency.record


@contextlib.asynccontextmanager
async def worker_probes(
    settings: BreakwaterSettings, loops: Sequence[TransactionalLoop]
) -> AsyncIterator[None]:
    """``/healthz``, ``/readyz`` (every loop joined its group) and ``/metrics`` when a port is set."""
    port = settings.pipeline.probe_port
    if port is None:
        yield
        return

    async def ready() -> tuple[bool, dict[str, object]]:
        waiting = [loop.config.name for loop in loops if loop.generation == 0]
        return not waiting, {"loops": len(loops), "waiting_for_assignment": waiting}

    async with serving_probes("worker", settings.pipeline.probe_host, port, ready):
        yield
