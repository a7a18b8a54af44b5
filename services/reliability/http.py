"""Reliable HTTP calls to configured services: :class:`ServiceClient` joins the outbound API clients,
the registry's monitors, and fallback chains built from each service's ``fallback`` settings.

A fallback that is a value (``default``, ``degraded``) becomes a synthetic ``200`` response with a JSON
body and an ``X-Breakwater-Fallback`` header, so callers handle one type; the :class:`Outcome` still says
where the answer came from.

>>> async with APIManager(settings.apis) as apis:  # doctest: +SKIP
...     services = ServiceClient(ServiceRegistry(settings.services), apis)
...     outcome = await services.request("rates", "GET", "/v1/rates/EUR")
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from services.outbound.batch import CallSpec
from services.outbound.manager import APIManager
from services.reliability.config import (
    CacheFallback,
    DefaultFallback,
    DegradedFallback,
    ServiceFallback,
    ServiceSettings,
)
from services.reliability.fallback import (
    Alternative,
    DefaultValue,
    Degraded,
    Fallback,
    FallbackChain,
    FallbackContext,
    LastGood,
    Outcome,
)
from services.reliability.registry import ServiceRegistry

FALLBACK_HEADER = "X-Breakwater-Fallback"
CACHEABLE = frozenset({"GET", "HEAD"})

DegradedBuilder = Callable[[FallbackContext], httpx.Response | Awaitable[httpx.Response]]


def synthetic_response(value: Any, source: str) -> httpx.Response:
    """A ``200`` carrying ``value`` as JSON, marked with where it came from."""
    return httpx.Response(200, json=value, headers={FALLBACK_HEADER: source})


class ServiceClient:
    """Calls services by name; each service's ``api`` names the :class:`APIClient` to use."""

    def __init__(
        self,
        registry: ServiceRegistry,
        apis: APIManager,
        *,
        degraded: Mapping[str, DegradedBuilder] | None = None,
    ) -> None:
        self.registry = registry
        self.apis = apis
        self._degraded = dict(degraded or {})
        for name, settings in registry.settings.items():
            if settings.api is not None and settings.api not in apis:
                raise ValueError(f"service {name!r} names unknown api {settings.api!r}")
            registry.set_fallbacks(name, self._chain(name, settings))

    def _chain(self, name: str, settings: ServiceSettings) -> FallbackChain[httpx.Response]:
        chain: list[Fallback[httpx.Response]] = []
        for spec in settings.fallback:
            match spec:
                case CacheFallback():
                    chain.append(LastGood(spec.max_age, max_entries=spec.max_entries))
                case DefaultFallback():
                    chain.append(DefaultValue(synthetic_response(spec.value, "default")))
                case ServiceFallback():
                    if self.registry.settings[spec.service].api is None:
                        raise ValueError(f"service {name!r} falls back to {spec.service!r}, which has no api")
                    chain.append(Alternative(spec.service, self._alternative(spec.service)))
                case DegradedFallback():
                    builder = self._degraded.get(name) or _fixed(synthetic_response(spec.value, "degraded"))
                    chain.append(Degraded(builder))
        return FallbackChain(chain)

    def _alternative(self, other: str) -> Callable[[FallbackContext], Awaitable[httpx.Response]]:
        async def call(context: FallbackContext) -> httpx.Response:
            spec = context.request
            if not isinstance(spec, CallSpec):
                raise TypeError("an alternative service needs the CallSpec of the failed call")
            outcome = await self.registry.call(
                other, lambda: self._send(other, spec), fallbacks=FallbackChain()
            )
            return outcome.value

        return call

    async def _send(self, service: str, spec: CallSpec) -> httpx.Response:
        api = self.registry.settings[service].api
        if api is None:
            raise ValueError(f"service {service!r} has no api to call")
        return await self.apis[api].request(
            spec.method,
            spec.url,
            idempotency_key=spec.idempotency_key,
            json=spec.json,
            content=spec.content,
            headers=spec.headers,
            params=spec.params,
        )

    async def request(
        self,
        service: str,
        method: str,
        url: str,
        *,
        idempotency_key: str | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Outcome[httpx.Response]:
        """Call ``service``; answers from its fallbacks if the call fails with a retryable error."""
        spec = CallSpec(method.upper(), url, json, content, headers, params, idempotency_key)
        key = (spec.method, url, tuple(sorted((params or {}).items()))) if spec.method in CACHEABLE else None
        return await self.registry.call(service, lambda: self._send(service, spec), key=key, request=spec)


def _fixed(response: httpx.Response) -> DegradedBuilder:
    return lambda _context: response
