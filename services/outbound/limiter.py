"""Adaptive rate limiting (AIMD) over aiolimiter's leaky bucket.

aiolimiter gives a fair, cancellation-safe async bucket but a fixed rate; what it lacks is changing
the rate while waiters queue, which :class:`_AdjustableBucket` adds (two private members of a pinned
major version; ``test_outbound_limiter`` fails if they move). The policy on top:

- multiplicative decrease on 429, 5xx and timeouts, at most once per ``decrease_interval`` so one burst
  of failures counts once;
- additive increase after a success while the rate-limit headers show room, at most once per
  ``increase_interval``; the rate is also cut to what the remaining quota can sustain until its reset;
- a pause for every caller until ``Retry-After`` (or the quota's reset when it is exhausted).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from aiolimiter import AsyncLimiter

from services.outbound.config import RateLimitSettings
from services.outbound.errors import DeadlineExceeded
from services.outbound.headers import RateLimitInfo

Clock = Callable[[], float]


class _AdjustableBucket(AsyncLimiter):
    """An :class:`AsyncLimiter` of ``burst`` capacity whose drain rate can change in place."""

    def __init__(self, burst: int, rate: float) -> None:
        super().__init__(max_rate=burst, time_period=burst / rate)

    def set_rate(self, rate: float) -> None:
        self._leak()  # settle the time elapsed so far at the old rate
        self.time_period = self.max_rate / rate
        self._rate_per_sec = rate
        self._wake_next()  # re-arm the waiter timer for the new rate


class AdaptiveLimiter:
    """Paces calls to one API and adapts its rate to what the API tells us.

    >>> limiter = AdaptiveLimiter(RateLimitSettings(start=10, min=1, max=50))
    >>> limiter.rate
    10.0
    """

    def __init__(self, settings: RateLimitSettings, *, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._rate = settings.start
        self._bucket: _AdjustableBucket | None = None
        self._paused_until = 0.0
        self._last_decrease = -math.inf
        self._last_increase = -math.inf
        self.decreases = 0
        self.increases = 0

    @property
    def rate(self) -> float:
        """Current allowed requests per second."""
        return self._rate

    def paused_for(self) -> float:
        """Seconds until calls may go again after a ``Retry-After`` or an exhausted quota."""
        return max(0.0, self._paused_until - self._clock())

    async def acquire(self, *, deadline: float | None = None) -> None:
        """Wait for a slot; fail at once with :class:`DeadlineExceeded` if a pause outlasts ``deadline``."""
        while (wait := self.paused_for()) > 0:
            if deadline is not None and self._clock() + wait > deadline:
                raise DeadlineExceeded(
                    f"rate limit pause of {wait:.3f}s outlasts the deadline", retry_after=wait
                )
            await asyncio.sleep(wait)
        if self.settings.enabled:
            if self._bucket is None:  # created lazily: aiolimiter binds to the running loop
                self._bucket = _AdjustableBucket(self.settings.burst, self._rate)
            await self._bucket.acquire()

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` (never shortens a pause already in force)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def on_throttled(self, retry_after: float | None) -> None:
        """The API said 429: slow down, and wait as long as it asked."""
        if retry_after is not None:
            self.pause(retry_after)
        self._decrease()

    def on_failure(self) -> None:
        """A 5xx or a timeout: the API is struggling, ask less of it."""
        self._decrease()

    def on_success(self, info: RateLimitInfo | None) -> None:
        """Grow while the API shows room; shrink to what an almost spent quota can sustain."""
        s = self.settings
        if info is None:
            if s.increase_without_headers:
                self._increase()
            return
        if info.exhausted and info.reset_after:
            self.pause(info.reset_after)
        if info.remaining is not None and info.reset_after:
            sustainable = info.remaining / info.reset_after
            if sustainable < self._rate:
                self._set_rate(sustainable)
                return
        room = info.room
        if room is None:
            room = 1.0 if info.remaining is not None and info.remaining > 0 else 0.0
        if room > s.low_water:
            self._increase()

    def _decrease(self) -> None:
        now = self._clock()
        if now - self._last_decrease < self.settings.decrease_interval:
            return
        self._last_decrease = now
        self.decreases += 1
        self._set_rate(self._rate * self.settings.decrease_factor)

    def _increase(self) -> None:
        now = self._clock()
        if self._rate >= self.settings.max or now - self._last_increase < self.settings.increase_interval:
            return
        if now - self._last_decrease < self.settings.decrease_interval:
            return  # let a decrease take effect before growing again
        self._last_increase = now
        self.increases += 1
        self._set_rate(self._rate + self.settings.increase_step)

    def _set_rate(self, rate: float) -> None:
        self._rate = min(self.settings.max, max(self.settings.min, rate))
        if self._bucket is not None:
            self._bucket.set_rate(self._rate)
