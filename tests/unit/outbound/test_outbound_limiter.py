"""AIMD: down on trouble, up while the API shows room, pauses for Retry-After, and the bucket it drives."""

from __future__ import annotations

import asyncio

import pytest

from services.outbound.config import RateLimitSettings
from services.outbound.errors import DeadlineExceeded
from services.outbound.headers import RateLimitInfo
from services.outbound.limiter import AdaptiveLimiter, _AdjustableBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, **kw: float | bool) -> AdaptiveLimiter:
    base = {
        "start": 16,
        "min": 2,
        "max": 20,
        "decrease_interval": 1,
        "increase_interval": 1,
        "increase_step": 1,
    }
    return AdaptiveLimiter(RateLimitSettings.model_validate(base | kw), clock=clock)


def test_failures_halve_the_rate_once_per_interval_down_to_min() -> None:
    clock = Clock()
    lim = limiter(clock)
    lim.on_failure()
    lim.on_failure()  # same interval: one burst of failures counts once
    assert lim.rate == 8
    for _ in range(5):
        clock.now += 1
        lim.on_failure()
    assert lim.rate == 2


def test_throttle_pauses_for_retry_after_and_lowers() -> None:
    clock = Clock()
    lim = limiter(clock)
    lim.on_throttled(3.0)
    assert lim.rate == 8
    assert lim.paused_for() == pytest.approx(3)
    lim.pause(1.0)  # a shorter pause never shortens the one in force
    assert lim.paused_for() == pytest.approx(3)


def test_success_with_room_adds_up_to_max_once_per_interval() -> None:
    clock = Clock()
    lim = limiter(clock)
    room = RateLimitInfo(limit=100, remaining=80)
    lim.on_success(room)
    lim.on_success(room)
    assert lim.rate == 17
    for _ in range(10):
        clock.now += 1
        lim.on_success(room)
    assert lim.rate == 20


def test_no_growth_right_after_a_decrease() -> None:
    clock = Clock()
    lim = limiter(clock)
    lim.on_failure()
    clock.now += 0.5
    lim.on_success(None)
    assert lim.rate == 8


@pytest.mark.parametrize(
    "info",
    [RateLimitInfo(limit=100, remaining=5), RateLimitInfo(remaining=0)],
    ids=["below-low-water", "exhausted"],
)
def test_no_growth_when_headers_show_little_room(info: RateLimitInfo) -> None:
    lim = limiter(Clock())
    lim.on_success(info)
    assert lim.rate == 16


def test_no_headers_grow_only_if_configured() -> None:
    grows, holds = limiter(Clock()), limiter(Clock(), increase_without_headers=False)
    grows.on_success(None)
    holds.on_success(None)
    assert (grows.rate, holds.rate) == (17, 16)


def test_rate_cut_to_what_the_quota_can_sustain() -> None:
    lim = limiter(Clock())
    lim.on_success(RateLimitInfo(limit=100, remaining=30, reset_after=10))
    assert lim.rate == 3


def test_exhausted_quota_pauses_until_reset() -> None:
    lim = limiter(Clock())
    lim.on_success(RateLimitInfo(limit=100, remaining=0, reset_after=7))
    assert lim.paused_for() == pytest.approx(7)
    assert lim.rate == 2  # 0 / 7 is below min


async def test_pause_longer_than_deadline_fails_at_once() -> None:
    clock = Clock()
    lim = limiter(clock)
    lim.pause(10)
    with pytest.raises(DeadlineExceeded) as error:
        await lim.acquire(deadline=clock.now + 1)
    assert error.value.retry_after == pytest.approx(10)


async def test_bucket_rate_changes_in_place() -> None:
    """Guards the two aiolimiter internals :class:`_AdjustableBucket` relies on."""
    loop = asyncio.get_running_loop()
    bucket = _AdjustableBucket(burst=1, rate=20)  # one call per 50 ms
    await bucket.acquire()
    started = loop.time()
    waiter = asyncio.ensure_future(bucket.acquire())
    await asyncio.sleep(0)
    bucket.set_rate(1000)  # now one per ms: the queued waiter must wake long before 50 ms
    await waiter
    assert loop.time() - started < 0.03
    bucket.set_rate(10)
    started = loop.time()
    await bucket.acquire()
    assert loop.time() - started >= 0.08
