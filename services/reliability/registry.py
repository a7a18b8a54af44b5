"""The configured services at run time: their monitors, their graph, their fallbacks, their alerts.

:meth:`ServiceRegistry.call` is the entry point for a reliable call::

    outcome = await registry.call("rates", lambda: fetch_rates("EUR"), key="EUR")
    outcome.value, outcome.source, outcome.degraded   # e.g. (..., "cache", True)

It times the call, feeds the service's monitor, falls back in the configured order when the call fails
(or straight away while health probes say the service is down), and raises alerts on state changes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, TypeVar

from services.errors import RetryableError
from services.outbound.breaker import BreakerState, StateListener
from services.reliability.alerts import Alert, AlertManager
from services.reliability.config import ServiceSettings
from services.reliability.fallback import FallbackChain, FallbackContext, Outcome
from services.reliability.graph import DependencyGraph
from services.reliability.monitor import ProbeResult, ServiceMonitor, ServiceState

T = TypeVar("T")

SLA_EVERY = 20
"""Judge the SLA every this many calls (it sorts the latency window), and on every probe."""


class ServiceUnavailable(RetryableError):
    """The service is known to be down (health probes), so the primary call was not made."""


class ServiceRegistry:
    """Holds one :class:`ServiceMonitor` per configured service and decides when to alert."""

    def __init__(
        self,
        services: Mapping[str, ServiceSettings],
        *,
        alerts: AlertManager | None = None,
        window: int = 200,
        min_samples: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.graph = DependencyGraph(services)
        self.settings = dict(services)
        self.alerts = alerts or AlertManager()
        self.monitors = {
            name: ServiceMonitor(name, s, window=window, min_samples=min_samples)
            for name, s in services.items()
        }
        self._clock = clock
        self._chains: dict[str, FallbackChain[Any]] = {}

    def __contains__(self, name: object) -> bool:
        return name in self.settings

    def state(self, name: str) -> ServiceState:
        return self.monitors[name].state()

    def set_fallbacks(self, name: str, chain: FallbackChain[Any]) -> None:
        """The chain :meth:`call` uses for ``name`` when no chain is passed to it."""
        self._chains[name] = chain

    def fallbacks(self, name: str) -> FallbackChain[Any]:
        return self._chains.get(name) or FallbackChain()

    async def record_call(self, name: str, ok: bool, latency: float) -> list[Alert]:
        monitor = self.monitors[name]
        monitor.record_call(ok, latency)
        return await self.evaluate(name, judge_sla=monitor.calls % SLA_EVERY == 0)

    async def record_probe(self, name: str, result: ProbeResult) -> list[Alert]:
        self.monitors[name].record_probe(result)
        return await self.evaluate(name)

    async def evaluate(self, name: str, *, judge_sla: bool = True) -> list[Alert]:
        """Alert if the service's state (or SLA compliance) changed since the last evaluation."""
        monitor = self.monitors[name]
        sla = monitor.sla_compliant() if judge_sla else None
        return await self.alerts.observe(
            name,
            monitor.state(),
            sla,
            criticality=self.settings[name].criticality,
            impact=self.graph.transitive_dependents(name),
        )

    def breaker_listener(self) -> StateListener:
        """Pass to :class:`~services.outbound.manager.APIManager`: an open breaker marks its services down.

        The state change is alerted on the next call or probe of the service (the listener is sync).
        """

        def listener(api: str, _old: BreakerState, new: BreakerState) -> None:
            for name, settings in self.settings.items():
                if settings.api == api:
                    self.monitors[name].breaker_open = new is BreakerState.OPEN

        return listener

    async def call(
        self,
        name: str,
        operation: Callable[[], Awaitable[T]],
        *,
        key: Hashable = None,
        request: object = None,
        fallbacks: FallbackChain[T] | None = None,
        fallback_on: tuple[type[BaseException], ...] = (RetryableError,),
    ) -> Outcome[T]:
        """Run ``operation`` for service ``name``; on a ``fallback_on`` error, answer from the fallbacks.

        Good answers are remembered under ``key`` by the chain's cache. When every fallback fails, the
        primary error is raised (a ``RetryableError`` stays one), with the fallbacks' reasons chained.
        """
        chain: FallbackChain[T] = fallbacks if fallbacks is not None else self.fallbacks(name)
        monitor = self.monitors[name]
        error: BaseException
        if monitor.health_down and chain:
            error = ServiceUnavailable(f"{name} is down according to its health checks")
        else:
            started = self._clock()
            try:
                value = await operation()
            except fallback_on as exc:
                await self.record_call(name, False, self._clock() - started)
                if not chain:
                    raise
                error = exc
            except Exception:
                await self.record_call(name, False, self._clock() - started)
                raise
            else:
                await self.record_call(name, True, self._clock() - started)
                if key is not None and (cache := chain.cache()) is not None:
                    cache.remember(key, value)
                return Outcome(value, "primary", degraded=False)
        monitor.record_fallback()
        context = FallbackContext(service=name, key=key, error=error, request=request)
        try:
            return await chain.resolve(context)
        except Exception as exhausted:
            raise error from exhausted
