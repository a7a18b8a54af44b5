"""A circuit breaker on the failure *rate* over a rolling time window.

Written here because purgatory, aiobreaker and pybreaker all open on a count of consecutive failures:
none has a failure rate over a rolling window, a minimum number of calls before judging, or a bound
on half-open probes, which is what an API failing 40% of calls needs (resilience4j's model).

    closed ──(calls >= min_calls and failures/calls >= failure_rate)──▶ open
    open ──(open_for elapsed)──▶ half-open: admits at most half_open_max_calls probes
    half-open ──(all probes succeed)──▶ closed (window cleared)
    half-open ──(any probe fails)──▶ open
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum

from services.outbound.config import BreakerSettings
from services.outbound.errors import CircuitOpen

log = logging.getLogger(__name__)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


StateListener = Callable[[str, BreakerState, BreakerState], None]
"""Called as ``listener(name, old, new)`` on every transition."""


class RollingWindow:
    """Calls and failures over the last ``window`` seconds, kept in ``buckets`` fixed slots (O(buckets))."""

    def __init__(self, window: float, buckets: int, clock: Callable[[], float]) -> None:
        self._width = window / buckets
        self._clock = clock
        self._epochs = [-1] * buckets
        self._calls = [0] * buckets
        self._failures = [0] * buckets

    def record(self, failed: bool) -> None:
        epoch = int(self._clock() / self._width)
        slot = epoch % len(self._epochs)
        if self._epochs[slot] != epoch:
            self._epochs[slot], self._calls[slot], self._failures[slot] = epoch, 0, 0
        self._calls[slot] += 1
        self._failures[slot] += failed

    def totals(self) -> tuple[int, int]:
        """(calls, failures) in the window."""
        oldest = int(self._clock() / self._width) - len(self._epochs)
        calls = failures = 0
        for epoch, c, f in zip(self._epochs, self._calls, self._failures, strict=True):
            if epoch > oldest:
                calls += c
                failures += f
        return calls, failures

    def clear(self) -> None:
        self._epochs = [-1] * len(self._epochs)


class CircuitBreaker:
    """Guards one API. :meth:`before_call` admits a call and returns its ticket; the caller then hands
    the ticket to exactly one of ``record_success``, ``record_failure`` or ``release`` (no outcome).

    A ticket names the breaker period (closed, open, half-open: each transition starts a new one) the
    call was admitted in; outcomes of calls from an earlier period are stragglers and change nothing,
    so a slow call admitted before the breaker opened can neither close it nor take a probe's place.

    >>> breaker = CircuitBreaker(BreakerSettings(min_calls=2, failure_rate=0.5))
    >>> breaker.record_failure(breaker.before_call())
    >>> breaker.record_failure(breaker.before_call())
    >>> breaker.state
    <BreakerState.OPEN: 'open'>
    """

    def __init__(
        self,
        settings: BreakerSettings,
        *,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
        listener: StateListener | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self._clock = clock
        self._listener = listener
        self._window = RollingWindow(settings.window, settings.buckets, clock)
        self._state = BreakerState.CLOSED
        self._period = 0
        self._opened_at = 0.0
        self._probes_admitted = 0
        self._probe_successes = 0

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() >= self._opened_at + self.settings.open_for:
            self._transition(BreakerState.HALF_OPEN)
        return self._state

    @property
    def failure_rate(self) -> float:
        calls, failures = self._window.totals()
        return failures / calls if calls else 0.0

    def before_call(self) -> int:
        """Admit a call and return its ticket, or raise :class:`CircuitOpen` (retryable, ``retry_after``)."""
        if not self.settings.enabled:
            return self._period
        state = self.state
        if state is BreakerState.OPEN:
            wait = self._opened_at + self.settings.open_for - self._clock()
            raise CircuitOpen(f"circuit for {self.name or 'api'} is open", retry_after=max(wait, 0.0))
        if state is BreakerState.HALF_OPEN:
            if self._probes_admitted >= self.settings.half_open_max_calls:
                raise CircuitOpen(f"circuit for {self.name or 'api'} is half-open, probes in flight")
            self._probes_admitted += 1
        return self._period

    def record_success(self, ticket: int) -> None:
        if not self.settings.enabled or ticket != self._period:
            return
        if self._state is BreakerState.HALF_OPEN:
            self._probe_successes += 1
            if self._probe_successes >= self.settings.half_open_max_calls:
                self._transition(BreakerState.CLOSED)
        elif self._state is BreakerState.CLOSED:
            self._window.record(False)

    def record_failure(self, ticket: int) -> None:
        if not self.settings.enabled or ticket != self._period:
            return
        if self._state is BreakerState.HALF_OPEN:
            self._transition(BreakerState.OPEN)
        elif self._state is BreakerState.CLOSED:
            self._window.record(True)
            calls, failures = self._window.totals()
            if calls >= self.settings.min_calls and failures >= self.settings.failure_rate * calls:
                self._transition(BreakerState.OPEN)

    def release(self, ticket: int) -> None:
        """A call ended without an outcome (cancelled, or our own mistake): give its probe slot back."""
        if ticket == self._period and self._state is BreakerState.HALF_OPEN:
            self._probes_admitted -= 1

    def _transition(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        self._period += 1
        if new is BreakerState.OPEN:
            self._opened_at = self._clock()
        if new is BreakerState.CLOSED:
            self._window.clear()
        self._probes_admitted = self._probe_successes = 0
        log.info("circuit %s: %s -> %s", self.name, old.value, new.value)
        if self._listener is not None:
            self._listener(self.name, old, new)
