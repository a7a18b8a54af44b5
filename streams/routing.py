"""Routes from configuration: provider + event type pattern → destination names."""

from __future__ import annotations

from fnmatch import fnmatchcase
from functools import lru_cache

from services.config import Route


class Router:
    """Every destination of every route that matches, in configuration order, without repeats.

    >>> from services.config import Route
    >>> Router([Route(provider="stripe", event_types=["charge.*"], destinations=["ledger"])]).route(
    ...     "stripe", "charge.succeeded")
    ('ledger',)
    """

    def __init__(self, routes: list[Route]) -> None:
        self._routes = tuple(routes)
        self.route = lru_cache(maxsize=4096)(self._route)

    def _route(self, provider: str, event_type: str) -> tuple[str, ...]:
        found: dict[str, None] = {}
        for route in self._routes:
            if route.provider not in ("*", provider):
                continue
            if any(fnmatchcase(event_type, pattern) for pattern in route.event_types):
                found.update(dict.fromkeys(route.destinations))
        return tuple(found)
