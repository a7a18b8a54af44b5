"""The circuit breaker: worked examples, then its state machine explored by hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from services.outbound.breaker import BreakerState, CircuitBreaker
from services.outbound.config import BreakerSettings
from services.outbound.errors import CircuitOpen


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state_now(breaker: CircuitBreaker) -> BreakerState:
    """``breaker.state`` read afresh: mypy keeps an asserted property narrowed across the calls that
    change it, and would call the next assertion on it unreachable."""
    return breaker.state


def make(clock: Clock, **kw: float) -> CircuitBreaker:
    base = {
        "min_calls": 4,
        "failure_rate": 0.5,
        "window": 10,
        "buckets": 10,
        "open_for": 5,
        "half_open_max_calls": 2,
    }
    return CircuitBreaker(BreakerSettings.model_validate(base | kw), name="api", clock=clock)


def outcome(breaker: CircuitBreaker, ok: bool) -> None:
    ticket = breaker.before_call()
    if ok:
        breaker.record_success(ticket)
    else:
        breaker.record_failure(ticket)


def test_stays_closed_below_min_calls_even_if_all_fail() -> None:
    breaker = make(Clock())
    for _ in range(3):
        outcome(breaker, False)
    assert breaker.state is BreakerState.CLOSED


def test_opens_at_failure_rate_and_refuses_with_retry_after() -> None:
    clock = Clock()
    breaker = make(clock)
    for ok in (True, False, True, False):
        outcome(breaker, ok)
    assert breaker.state is BreakerState.OPEN
    clock.now += 2
    with pytest.raises(CircuitOpen) as refused:
        breaker.before_call()
    assert refused.value.retry_after == pytest.approx(3)


def test_rate_below_threshold_keeps_it_closed() -> None:
    breaker = make(Clock())
    for ok in (True, True, False, True, True, False, True):
        outcome(breaker, ok)
    assert breaker.state is BreakerState.CLOSED


def test_old_failures_leave_the_window() -> None:
    clock = Clock()
    breaker = make(clock)
    for _ in range(3):
        outcome(breaker, False)
    clock.now += 11
    outcome(breaker, False)
    assert breaker.state is BreakerState.CLOSED  # one failure in the window, below min_calls


def test_half_open_admits_bounded_probes_then_closes() -> None:
    clock = Clock()
    breaker = make(clock)
    for _ in range(4):
        outcome(breaker, False)
    clock.now += 5
    assert breaker.state is BreakerState.HALF_OPEN
    first, second = breaker.before_call(), breaker.before_call()
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # a third probe while two are in flight
    breaker.record_success(first)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_success(second)
    assert state_now(breaker) is BreakerState.CLOSED
    assert breaker.failure_rate == 0


def test_a_failed_probe_opens_again() -> None:
    clock = Clock()
    breaker = make(clock)
    for _ in range(4):
        outcome(breaker, False)
    clock.now += 5
    outcome(breaker, True)
    outcome(breaker, False)
    assert breaker.state is BreakerState.OPEN


def test_cancelled_probe_gives_its_slot_back() -> None:
    clock = Clock()
    breaker = make(clock, half_open_max_calls=1)
    for _ in range(4):
        outcome(breaker, False)
    clock.now += 5
    breaker.release(breaker.before_call())
    outcome(breaker, True)
    assert breaker.state is BreakerState.CLOSED


def test_stragglers_from_before_the_breaker_opened_change_nothing() -> None:
    clock = Clock()
    breaker = make(clock, half_open_max_calls=1)
    slow = breaker.before_call()  # admitted while closed, answers much later
    for _ in range(4):
        outcome(breaker, False)
    clock.now += 5
    probe = breaker.before_call()
    breaker.release(slow)  # must not free the probe's slot
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    breaker.record_success(slow)  # must not close the breaker
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_success(probe)
    assert state_now(breaker) is BreakerState.CLOSED


def test_listener_hears_every_transition() -> None:
    clock, seen = Clock(), []
    breaker = CircuitBreaker(
        BreakerSettings(min_calls=1, open_for=1, half_open_max_calls=1),
        name="x",
        clock=clock,
        listener=lambda name, old, new: seen.append((name, old, new)),
    )
    outcome(breaker, False)
    clock.now += 1
    outcome(breaker, True)
    assert seen == [
        ("x", BreakerState.CLOSED, BreakerState.OPEN),
        ("x", BreakerState.OPEN, BreakerState.HALF_OPEN),
        ("x", BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


def test_disabled_breaker_never_refuses() -> None:
    breaker = make(Clock(), enabled=False)
    for _ in range(20):
        outcome(breaker, False)
    assert breaker.state is BreakerState.CLOSED


ALLOWED = {
    (BreakerState.CLOSED, BreakerState.OPEN),
    (BreakerState.OPEN, BreakerState.HALF_OPEN),
    (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    (BreakerState.HALF_OPEN, BreakerState.OPEN),
}


class BreakerMachine(RuleBasedStateMachine):
    """Random interleavings of calls starting, finishing and time passing; the invariants must hold."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.settings = BreakerSettings(
            min_calls=3, failure_rate=0.5, window=10, buckets=5, open_for=4, half_open_max_calls=2
        )
        self.transitions: list[tuple[BreakerState, BreakerState, float, tuple[int, int]]] = []
        self.breaker = CircuitBreaker(self.settings, clock=self.clock, listener=self._heard)
        self.in_flight: list[tuple[BreakerState, int, int]] = []  # (state, half-open period, ticket)
        self.period = 0
        self.probe_successes = 0
        self.opened_at: float | None = None

    def _heard(self, _name: str, old: BreakerState, new: BreakerState) -> None:
        self.transitions.append((old, new, self.clock.now, self.breaker._window.totals()))
        if new is BreakerState.OPEN:
            self.opened_at = self.clock.now
        if new is BreakerState.HALF_OPEN:
            self.period += 1
            self.probe_successes = 0
        if (old, new) == (BreakerState.HALF_OPEN, BreakerState.CLOSED):
            # only this period's own probes may close it, and all of them must have succeeded
            assert self.probe_successes == self.settings.half_open_max_calls

    @rule(seconds=st.floats(0, 6))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule(ok=st.booleans())
    def quick_call(self, ok: bool) -> None:
        """A call that starts and ends before anything else happens."""
        if self._start():
            self.finish_call(len(self.in_flight) - 1, "success" if ok else "failure")

    @rule()
    def start_call(self) -> None:
        self._start()

    def _start(self) -> bool:
        state = self.breaker.state
        try:
            ticket = self.breaker.before_call()
        except CircuitOpen:
            assert state is not BreakerState.CLOSED
            if state is BreakerState.OPEN:
                assert self.opened_at is not None and self.clock.now < self.opened_at + self.settings.open_for
            return False
        assert state is not BreakerState.OPEN
        self.in_flight.append((state, self.period, ticket))
        return True

    @precondition(lambda self: self.in_flight)
    @rule(index=st.integers(0, 100), result=st.sampled_from(["success", "failure", "cancelled"]))
    def finish_call(self, index: int, result: str) -> None:
        admitted_in, period, ticket = self.in_flight.pop(index % len(self.in_flight))
        before = self.breaker.state
        probe = (
            admitted_in is BreakerState.HALF_OPEN
            and period == self.period
            and before is BreakerState.HALF_OPEN
        )
        if probe and result == "success":
            self.probe_successes += 1
        {
            "success": self.breaker.record_success,
            "failure": self.breaker.record_failure,
            "cancelled": self.breaker.release,
        }[result](ticket)
        if probe and result == "failure":
            assert self.breaker.state is BreakerState.OPEN

    @invariant()
    def only_allowed_transitions(self) -> None:
        for old, new, _at, _totals in self.transitions:
            assert (old, new) in ALLOWED

    @invariant()
    def opens_from_closed_only_on_enough_failing_calls(self) -> None:
        for old, new, _at, (calls, failures) in self.transitions:
            if (old, new) == (BreakerState.CLOSED, BreakerState.OPEN):
                assert calls >= self.settings.min_calls
                assert failures >= self.settings.failure_rate * calls

    @invariant()
    def half_open_probes_are_bounded(self) -> None:
        if self.breaker.state is BreakerState.HALF_OPEN:
            probes = sum(1 for s, p, _t in self.in_flight if s is BreakerState.HALF_OPEN and p == self.period)
            assert probes <= self.settings.half_open_max_calls


TestBreakerMachine = BreakerMachine.TestCase
TestBreakerMachine.settings = hyp_settings(max_examples=150, stateful_step_count=40, deadline=None)
