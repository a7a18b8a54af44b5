"""How long to wait before the next attempt.

tenacity runs the retry loop (attempt counting, stop conditions, sleeping, hooks); the delay curves
are a pure function here because tenacity has no polynomial, Fibonacci or decorrelated-jitter wait,
and because a pure function is what hypothesis can check for bounds. :class:`BackoffWait` adapts it
to tenacity and lets a server's ``Retry-After`` stretch the delay (never shorten it).

Delays for retry ``n`` (1 = the first retry), base ``b``, always capped at ``max_delay``:

=====================  ==========================================
exponential            ``b * multiplier ** (n - 1)``
linear                 ``b * n``
polynomial             ``b * n ** power``
fibonacci              ``b * fib(n)``  (1, 1, 2, 3, 5, ...)
decorrelated_jitter    ``uniform(b, 3 * previous)`` (AWS architecture blog)
=====================  ==========================================
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

from tenacity.wait import wait_base

from services.outbound.config import RetrySettings

if TYPE_CHECKING:
    from tenacity import RetryCallState


def _fibonacci(n: int, limit: float) -> float:
    """fib(n) with fib(1) = fib(2) = 1, stopping early once past ``limit``."""
    a, b = 1, 1
    for _ in range(n - 1):
        a, b = b, a + b
        if a > limit:
            break
    return float(a)


def _curve(settings: RetrySettings, attempt: int) -> float:
    base, cap = settings.base_delay, settings.max_delay
    ceiling = cap / base  # any factor above this is capped anyway; avoids float overflow
    match settings.strategy:
        case "exponential":
            if (attempt - 1) * math.log(settings.multiplier) > math.log(ceiling) + 1:
                return cap
            factor = settings.multiplier ** (attempt - 1)
        case "linear":
            factor = float(attempt)
        case "polynomial":
            if settings.power * math.log(attempt) > math.log(ceiling) + 1:
                return cap
            factor = float(attempt) ** settings.power
        case "fibonacci":
            factor = _fibonacci(attempt, ceiling)
        case _:  # pragma: no cover - decorrelated jitter is handled by the caller
            raise ValueError(settings.strategy)
    return min(cap, base * factor)


def backoff_delay(
    settings: RetrySettings, attempt: int, *, previous: float = 0.0, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retry ``attempt`` (>= 1); always within [0, ``max_delay``].

    ``previous`` is the last delay (decorrelated jitter grows from it).

    >>> backoff_delay(RetrySettings(strategy="fibonacci", base_delay=0.1, max_delay=10), 5)
    0.5
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    rand = rng or random
    base, cap = settings.base_delay, settings.max_delay
    if settings.strategy == "decorrelated_jitter":
        upper = max(base, min(cap, previous) * 3)
        return min(cap, rand.uniform(base, upper))
    delay = _curve(settings, attempt)
    if settings.jitter:
        delay *= 1 - settings.jitter * rand.random()
    return min(cap, max(0.0, delay))


class BackoffWait(wait_base):
    """tenacity wait: the configured curve, stretched to the failed attempt's ``retry_after``."""

    def __init__(self, settings: RetrySettings, *, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        delay = backoff_delay(
            self.settings, retry_state.attempt_number, previous=retry_state.upcoming_sleep, rng=self.rng
        )
        outcome = retry_state.outcome
        if self.settings.respect_retry_after and outcome is not None and outcome.failed:
            retry_after = getattr(outcome.exception(), "retry_after", None)
            if isinstance(retry_after, int | float):
                delay = max(delay, float(retry_after))
        return delay
