"""One :class:`APIClient` per configured API, created on first use and closed together."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Self

import httpx

from services.outbound.breaker import StateListener
from services.outbound.client import APIClient
from services.outbound.config import APISettings

TransportFactory = Callable[[str], httpx.AsyncBaseTransport | None]


class APIManager:
    """Hands out the shared client of each API named in ``settings.apis``.

    >>> async with APIManager(settings.apis) as apis:  # doctest: +SKIP
    ...     await apis["payments"].request("GET", "/health")
    """

    def __init__(
        self,
        apis: Mapping[str, APISettings],
        *,
        breaker_listener: StateListener | None = None,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        self._settings = dict(apis)
        self._clients: dict[str, APIClient] = {}
        self._listener = breaker_listener
        self._transport_factory = transport_factory

    def __contains__(self, name: object) -> bool:
        return name in self._settings

    def __getitem__(self, name: str) -> APIClient:
        client = self._clients.get(name)
        if client is None:
            if name not in self._settings:
                raise KeyError(f"no API named {name!r}; configured: {sorted(self._settings)}")
            transport = self._transport_factory(name) if self._transport_factory else None
            client = APIClient(
                name, self._settings[name], transport=transport, breaker_listener=self._listener
            )
            self._clients[name] = client
        return client

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._settings))

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
