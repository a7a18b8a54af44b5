"""Per-provider admission: a token bucket in front of the edge, off unless configured.

A flood from one provider is answered 429 with ``Retry-After`` before it costs a signature check or a
Kafka write; the provider retries later, as every provider does on 429.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from aiolimiter import AsyncLimiter

from services.config import RateLimit
from services.errors import Overloaded


class Admission:
    """One leaky bucket per provider that has an ``admission`` limit."""

    def __init__(self, limits: Mapping[str, RateLimit | None]) -> None:
        self._buckets: dict[str, tuple[AsyncLimiter, int]] = {}
        for provider, limit in limits.items():
            if limit is not None:
                bucket = AsyncLimiter(max_rate=limit.burst, time_period=limit.burst / limit.rate)
                self._buckets[provider] = (bucket, max(1, math.ceil(1 / limit.rate)))

    async def admit(self, provider: str) -> None:
        """Take a token for ``provider`` or raise :class:`Overloaded` (429) without waiting."""
        entry = self._buckets.get(provider)
        if entry is None:
            return
        bucket, retry_after = entry
        if not bucket.has_capacity():
            raise Overloaded(
                f"provider {provider} is over its admission limit",
                retry_after=retry_after,
                status=429,
                code="rate_limited",
            )
        await bucket.acquire()  # returns at once: has_capacity() just said so
