"""CPU seconds spent by processes over a measured run: where a saturated machine's cores went.

On a 2-core machine the broker, the load generator and the server under test share the cores, so a
rate alone does not say which of them bound it; CPU per request of each does.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

import psutil


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """User + system CPU seconds of ``pid`` and (unless told not to) its live children, such as
    uvicorn's workers. The benchmark's own process is measured alone: the servers are its children."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        process = psutil.Process(pid)
        for each in (process, *(process.children(recursive=True) if children else ())):
            with contextlib.suppress(psutil.Error):
                times = each.cpu_times()
                total += times.user + times.system
    return total


@dataclass
class CpuUse:
    """CPU seconds per named process over one run, and the run's wall time."""

    seconds: dict[str, float]
    wall: float

    def per_request_us(self, rate: float) -> dict[str, float]:
        """CPU microseconds per request of each process, at ``rate`` requests a second."""
        return {name: used / self.wall / rate * 1e6 if rate else 0.0 for name, used in self.seconds.items()}

    @property
    def cores_busy(self) -> float:
        return sum(self.seconds.values()) / self.wall if self.wall else 0.0


class CpuMeter:
    """``start()`` then ``stop()`` around a run.

    ``trees`` maps a name to a process counted with its children; ``alone`` to one counted without.
    """

    def __init__(self, trees: Mapping[str, int], alone: Mapping[str, int]) -> None:
        self._pids = {name: (pid, True) for name, pid in trees.items()}
        self._pids |= {name: (pid, False) for name, pid in alone.items()}
        self._before: dict[str, float] = {}
        self._started = 0.0

    def _now(self) -> dict[str, float]:
        return {name: cpu_seconds(pid, children=tree) for name, (pid, tree) in self._pids.items()}

    def start(self) -> None:
        self._before = self._now()
        self._started = time.perf_counter()

    def stop(self) -> CpuUse:
        wall = time.perf_counter() - self._started
        used = {name: now - self._before[name] for name, now in self._now().items()}
        return CpuUse(used, wall)
