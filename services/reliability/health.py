"""Periodic HTTP health probes that feed each service's state.

A probe passes when the answer's status is in ``expected_status`` within ``timeout``; anything else
(another status, a timeout, a refused connection) fails it. Probes use their own small client and do
not go through the API's limiter or breaker: a probe must see the service, not our view of it.

>>> async with HealthChecker(registry) as checker:  # doctest: +SKIP
...     await checker.start()   # one task per service with a health_check, until the block ends
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

import httpx

from services.reliability.monitor import ProbeResult
from services.reliability.registry import ServiceRegistry

log = logging.getLogger(__name__)


class HealthChecker:
    def __init__(
        self,
        registry: ServiceRegistry,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self._clock = clock
        self._http = httpx.AsyncClient(transport=transport, follow_redirects=False)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """Services that have a health check."""
        return tuple(sorted(n for n, s in self.registry.settings.items() if s.health_check is not None))

    async def probe(self, name: str) -> ProbeResult:
        """Run one probe and return its result (without recording it)."""
        check = self.registry.settings[name].health_check
        if check is None:
            raise ValueError(f"service {name!r} has no health_check")
        started = self._clock()
        try:
            response = await self._http.request(check.method, str(check.url), timeout=check.timeout)
        except httpx.HTTPError as exc:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return ProbeResult(ok=False, latency=self._clock() - started, detail=detail)
        latency = self._clock() - started
        ok = response.status_code in check.expected_status
        detail = "" if ok else f"status {response.status_code}, expected {sorted(check.expected_status)}"
        return ProbeResult(ok=ok, latency=latency, status=response.status_code, detail=detail)

    async def check(self, name: str) -> ProbeResult:
        """Probe ``name`` once and feed the result to its monitor (which may alert)."""
        result = await self.probe(name)
        await self.registry.record_probe(name, result)
        return result

    async def check_all(self) -> dict[str, ProbeResult]:
        """Probe every service that has a health check, concurrently, once."""
        names = self.names
        results = await asyncio.gather(*(self.check(name) for name in names))
        return dict(zip(names, results, strict=True))

    async def start(self) -> None:
        """Probe every service on its own interval until :meth:`stop`."""
        for name in self.names:
            if name not in self._tasks:
                self._tasks[name] = asyncio.create_task(self._loop(name), name=f"health:{name}")

    async def stop(self) -> None:
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, name: str) -> None:
        check = self.registry.settings[name].health_check
        assert check is not None
        while True:
            started = self._clock()
            try:
                await self.check(name)
            except Exception:  # a bug in a sink or monitor must not stop the probing
                log.exception("health check of %s failed unexpectedly", name)
            await asyncio.sleep(max(0.0, check.interval - (self._clock() - started)))

    async def aclose(self) -> None:
        await self.stop()
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
