"""What the worker shows the outside: its counters as OpenTelemetry metrics, and its probes.

Metrics are registered once per process (OpenTelemetry's instruments are process-wide); each worker
run attaches its own :class:`Metrics`, which is what tests that start several in-process workers need.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Sequence

from services.config import BreakwaterSettings
from services.probes import serving_probes
from services.telemetry import Telemetry, export_counters, setup_telemetry
from streams.eos import TransactionalLoop
from streams.metrics import Metrics

# Every worker run in this process: counters are monotonic per process, so a second in-process worker
# (tests) adds to the first one's counts instead of replacing them. A deployed process has one.
_attached: list[Metrics] = []
_telemetry: Telemetry | None = None


def _totals() -> Counter[str]:
    totals: Counter[str] = Counter()
    for metrics in _attached:
        totals.update(metrics)
    return totals


def attach(settings: BreakwaterSettings, metrics: Metrics) -> None:
    """Export ``metrics`` (and record end-to-end latency from it) for this process."""
    global _telemetry
    if _telemetry is None:
        _telemetry = setup_telemetry(settings.telemetry, "worker")
        export_counters(_telemetry.meter, _totals)
    _attached.append(metrics)
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
