"""Backoff curves: the documented values, and bounds that hold for every input (hypothesis)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tenacity import AsyncRetrying, RetryCallState

from services.errors import RetryableError
from services.outbound.backoff import BackoffWait, backoff_delay
from services.outbound.config import RetrySettings

STRATEGIES = ["exponential", "linear", "polynomial", "fibonacci", "decorrelated_jitter"]


def settings(strategy: str, **kw: float) -> RetrySettings:
    return RetrySettings.model_validate({"strategy": strategy, "base_delay": 0.1, "max_delay": 100, **kw})


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("exponential", [0.1, 0.2, 0.4, 0.8, 1.6]),
        ("linear", [0.1, 0.2, 0.3, 0.4, 0.5]),
        ("polynomial", [0.1, 0.4, 0.9, 1.6, 2.5]),
        ("fibonacci", [0.1, 0.1, 0.2, 0.3, 0.5]),
    ],
)
def test_documented_curves(strategy: str, expected: list[float]) -> None:
    got = [backoff_delay(settings(strategy), n) for n in range(1, 6)]
    assert got == pytest.approx(expected)


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff_delay(settings("linear"), 0)


retry_settings = st.builds(
    lambda strategy, base, cap_factor, multiplier, power, jitter: RetrySettings(
        strategy=strategy,
        base_delay=base,
        max_delay=base * cap_factor,
        multiplier=multiplier,
        power=power,
        jitter=jitter,
    ),
    strategy=st.sampled_from(STRATEGIES),
    base=st.floats(1e-4, 10),
    cap_factor=st.floats(1, 1e4),
    multiplier=st.floats(1, 10),
    power=st.floats(0.1, 5),
    jitter=st.floats(0, 1),
)


@given(retry_settings, st.integers(1, 10_000), st.floats(0, 1e6), st.integers(0, 2**32))
def test_delay_always_within_zero_and_max_delay(
    s: RetrySettings, attempt: int, previous: float, seed: int
) -> None:
    delay = backoff_delay(s, attempt, previous=previous, rng=random.Random(seed))
    assert 0 <= delay <= s.max_delay


@given(retry_settings, st.integers(1, 500))
def test_deterministic_curves_never_shrink(s: RetrySettings, attempt: int) -> None:
    if s.strategy == "decorrelated_jitter":
        return
    plain = s.model_copy(update={"jitter": 0.0})
    assert backoff_delay(plain, attempt + 1) >= backoff_delay(plain, attempt)


@given(retry_settings, st.integers(1, 10_000), st.floats(0, 1e6), st.integers(0, 2**32))
def test_jitter_only_ever_shortens(s: RetrySettings, attempt: int, previous: float, seed: int) -> None:
    if s.strategy == "decorrelated_jitter":
        return
    plain = s.model_copy(update={"jitter": 0.0})
    ceiling = backoff_delay(plain, attempt)
    jittered = backoff_delay(s, attempt, rng=random.Random(seed))
    assert ceiling * (1 - s.jitter) - 1e-12 <= jittered <= ceiling


@given(st.floats(1e-3, 1), st.floats(1, 100), st.floats(0, 1e3), st.integers(0, 2**32))
def test_decorrelated_jitter_grows_from_previous_within_base_and_three_times(
    base: float, cap_factor: float, previous: float, seed: int
) -> None:
    s = RetrySettings(strategy="decorrelated_jitter", base_delay=base, max_delay=base * cap_factor)
    delay = backoff_delay(s, 3, previous=previous, rng=random.Random(seed))
    assert min(base, s.max_delay) <= delay <= min(s.max_delay, max(base, min(previous, s.max_delay) * 3))


def _state(attempt: int, error: BaseException | None) -> RetryCallState:
    state = RetryCallState(retry_object=AsyncRetrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    if error is not None:
        state.set_exception((type(error), error, None))
    return state


def test_wait_is_stretched_by_retry_after_never_shortened() -> None:
    wait = BackoffWait(settings("linear"))
    assert wait(_state(2, RetryableError("x", retry_after=5))) == 5
    assert wait(_state(2, RetryableError("x", retry_after=0.01))) == pytest.approx(0.2)
    assert wait(_state(2, RetryableError("x"))) == pytest.approx(0.2)


def test_retry_after_can_be_ignored_by_settings() -> None:
    wait = BackoffWait(settings("linear", respect_retry_after=False))
    assert wait(_state(1, RetryableError("x", retry_after=5))) == pytest.approx(0.1)
