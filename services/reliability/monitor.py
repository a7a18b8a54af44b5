"""What Breakwater has seen of one service, and the state that follows from it.

Calls and health probes both count for availability and latency (a probe is a call that asks "are you
there?"). The state is the worst of three views:

- health probes: ``failures_to_down`` failed probes in a row mean DOWN, ``successes_to_up`` good ones
  bring it back; a probe slower than ``degraded_latency_ms`` means DEGRADED;
- recent calls (the last ``window`` of them, once there are ``min_samples``): a failure rate at
  ``down_failure_rate`` means DOWN, at ``degraded_failure_rate`` DEGRADED. Probes are left out here:
  they have their own thresholds, and counting them twice would keep a recovered service down;
- the API's circuit breaker: open means DOWN.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from services.reliability.config import ServiceSettings


class ServiceState(StrEnum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"


_SEVERITY = {ServiceState.UNKNOWN: 0, ServiceState.HEALTHY: 1, ServiceState.DEGRADED: 2, ServiceState.DOWN: 3}


def worst(*states: ServiceState) -> ServiceState:
    return max(states, key=_SEVERITY.__getitem__)


def percentile(samples: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``samples``, or ``None`` when there are none."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class _Outcomes:
    """The last ``size`` successes and failures, with the failure count kept as they come and go."""

    def __init__(self, size: int) -> None:
        self.items: deque[bool] = deque(maxlen=size)
        self.failures = 0

    def add(self, ok: bool) -> None:
        if len(self.items) == self.items.maxlen and not self.items[0]:
            self.failures -= 1
        self.items.append(ok)
        self.failures += not ok

    def __len__(self) -> int:
        return len(self.items)

    def failure_rate(self) -> float:
        return self.failures / len(self.items) if self.items else 0.0


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    latency: float
    status: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class Snapshot:
    """Figures for the report, frozen at one moment."""

    state: ServiceState
    observations: int
    success_rate: float | None
    calls: int
    fallbacks: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    sla_compliant: bool | None
    last_probe: ProbeResult | None

    @property
    def fallback_rate(self) -> float | None:
        return self.fallbacks / self.calls if self.calls else None


class ServiceMonitor:
    """Counts and windows for one service; cheap to update on every call."""

    def __init__(
        self,
        name: str,
        settings: ServiceSettings,
        *,
        window: int = 200,
        min_samples: int = 5,
    ) -> None:
        self.name = name
        self.settings = settings
        self.min_samples = min_samples
        self._outcomes = _Outcomes(window)  # calls and probes: availability
        self._calls = _Outcomes(window)  # calls only: state
        self._latencies: deque[float] = deque(maxlen=window)
        self.calls = 0
        self.fallbacks = 0
        self._probe_failures = 0
        self._probe_successes = 0
        self._health = ServiceState.UNKNOWN
        self.last_probe: ProbeResult | None = None
        self.breaker_open = False

    def record_call(self, ok: bool, latency: float) -> None:
        self.calls += 1
        self._calls.add(ok)
        self._observe(ok, latency)

    def record_fallback(self) -> None:
        self.fallbacks += 1

    def record_probe(self, result: ProbeResult) -> None:
        self.last_probe = result
        self._observe(result.ok, result.latency)
        check = self.settings.health_check
        if check is None:
            return
        if result.ok:
            self._probe_failures = 0
            self._probe_successes += 1
            slow = check.degraded_latency_ms is not None and result.latency * 1000 > check.degraded_latency_ms
            if self._health is not ServiceState.DOWN or self._probe_successes >= check.successes_to_up:
                self._health = ServiceState.DEGRADED if slow else ServiceState.HEALTHY
        else:
            self._probe_successes = 0
            self._probe_failures += 1
            if self._probe_failures >= check.failures_to_down:
                self._health = ServiceState.DOWN
            elif self._health is ServiceState.UNKNOWN:
                self._health = ServiceState.DEGRADED

    @property
    def health_down(self) -> bool:
        """Probes say the service is down: callers may skip it and go straight to fallbacks."""
        return self._health is ServiceState.DOWN

    def _observe(self, ok: bool, latency: float) -> None:
        self._outcomes.add(ok)
        self._latencies.append(latency)

    def success_rate(self) -> float | None:
        if not len(self._outcomes):
            return None
        return 1 - self._outcomes.failure_rate()

    def state(self) -> ServiceState:
        s = self.settings
        by_calls = ServiceState.UNKNOWN
        if len(self._calls) >= self.min_samples:
            failure_rate = self._calls.failure_rate()
            if failure_rate >= s.down_failure_rate:
                by_calls = ServiceState.DOWN
            elif failure_rate >= s.degraded_failure_rate:
                by_calls = ServiceState.DEGRADED
            else:
                by_calls = ServiceState.HEALTHY
        by_breaker = ServiceState.DOWN if self.breaker_open else ServiceState.UNKNOWN
        return worst(self._health, by_calls, by_breaker)

    def latency_ms(self, q: float) -> float | None:
        value = percentile(list(self._latencies), q)
        return None if value is None else value * 1000

    def sla_compliant(self) -> bool | None:
        """``None`` until there are ``min_samples`` observations: too few to judge."""
        if len(self._outcomes) < self.min_samples:
            return None
        sla = self.settings.sla
        latency = self.latency_ms(sla.percentile)
        rate = self.success_rate()
        return (
            rate is not None
            and rate >= sla.availability
            and latency is not None
            and latency <= sla.latency_ms
        )

    def snapshot(self) -> Snapshot:
        latencies = list(self._latencies)

        def ms(q: float) -> float | None:
            value = percentile(latencies, q)
            return None if value is None else round(value * 1000, 3)

        return Snapshot(
            state=self.state(),
            observations=len(self._outcomes),
            success_rate=self.success_rate(),
            calls=self.calls,
            fallbacks=self.fallbacks,
            p50_ms=ms(50),
            p95_ms=ms(95),
            p99_ms=ms(99),
            sla_compliant=self.sla_compliant(),
            last_probe=self.last_probe,
        )
