"""Pacing: token buckets per provider and per destination, a concurrency cap and 429 cool-downs.

Shaping waits, it never drops. Each provider is dispatched by its own loop, so a provider waiting
for its bucket (or a slow destination) holds only its own ready topic.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiolimiter import AsyncLimiter

from services.config import RateLimit
from services.errors import BreakwaterError


def bucket(limit: RateLimit | None) -> AsyncLimiter | None:
    """``burst`` tokens at once, refilled at ``rate`` a second."""
    return None if limit is None else AsyncLimiter(limit.burst, limit.burst / limit.rate)


class Blocked(BreakwaterError):
    """The destination is cooling down past the time a record may wait in line: park it instead."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"cooling down for {wait:.1f}s more")
        self.wait = wait


class Lane:
    """One destination as seen from one provider's loop: bucket, concurrency and cool-down."""

    def __init__(self, rate: RateLimit | None, concurrency: int) -> None:
        self._bucket = bucket(rate)
        self._slots = asyncio.Semaphore(concurrency)
        self._blocked_until = 0.0

    @property
    def unpaced(self) -> bool:
        return self._bucket is None

    def cool_down(self, seconds: float) -> None:
        """The destination asked us to wait (429 Retry-After): nothing goes out before then."""
        until = asyncio.get_running_loop().time() + seconds
        self._blocked_until = max(self._blocked_until, until)

    def _refuse_past(self, wait_until: float) -> float:
        """The cool-down left, or :class:`Blocked` when it ends after ``wait_until``."""
        now = asyncio.get_running_loop().time()
        wait = max(0.0, self._blocked_until - now)
        if wait > 0 and now + wait > wait_until:
            raise Blocked(wait)
        return wait

    @asynccontextmanager
    async def slot(
        self, provider_bucket: AsyncLimiter | None, wait_until: float = math.inf
    ) -> AsyncIterator[None]:
        """A turn to call the destination; raises :class:`Blocked` rather than wait past ``wait_until``.

        A 429 that arrives while a record waits for its turn extends the cool-down (a fixed-window
        limit answers "a minute" once its window is spent): waiting it out inside the slot held every
        record queued behind it, and the batch, for that minute.
        """
        self._refuse_past(wait_until)  # before queueing for a turn: no need to wait for one
        async with self._slots:
            while (wait := self._refuse_past(wait_until)) > 0:  # noqa: ASYNC110  # a 429 may extend it
                await asyncio.sleep(wait)
            if provider_bucket is not None:
                await provider_bucket.acquire()
            if self._bucket is not None:
                await self._bucket.acquire()
            yield
