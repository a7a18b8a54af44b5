"""APIClient against a real local HTTP server that fails, throttles, slows down and flaps on cue."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest

from services.errors import RetryableError
from services.outbound.batch import CallSpec
from services.outbound.client import APIClient
from services.outbound.config import APISettings
from services.outbound.errors import CallTimeout, CircuitOpen, RetryableStatus
from tests.support.http_server import Reply, ScriptedServer, fail_times, flapping, rate_limited, sequence


class ShiftClock:
    """Real monotonic time that a test can jump forward (instead of sleeping through ``open_for``)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def shift(self, seconds: float) -> None:
        self.offset += seconds


def settings(server: ScriptedServer, **sections: dict[str, Any]) -> APISettings:
    data: dict[str, Any] = {
        "base_url": server.url,
        "retry": {"max_attempts": 3, "base_delay": 0.001, "max_delay": 0.02},
        "rate_limit": {"start": 1000, "max": 1000, "burst": 50},
        "timeouts": {"attempt": 1, "overall": 3},
        "breaker": {"min_calls": 100},
    }
    for name, values in sections.items():
        data[name] = data.get(name, {}) | values
    return APISettings.model_validate(data)


async def test_breaker_opens_on_failure_rate_and_recovers_through_half_open(server: ScriptedServer) -> None:
    server.route("/pay", fail_times(4, status=500))
    clock = ShiftClock()
    api = settings(
        server,
        retry={"max_attempts": 1},
        breaker={"min_calls": 4, "failure_rate": 0.5, "open_for": 30, "half_open_max_calls": 2},
    )
    async with APIClient("pay", api, clock=clock) as client:
        for _ in range(4):
            with pytest.raises(RetryableStatus):
                await client.request("GET", "/pay")
        with pytest.raises(CircuitOpen) as refused:
            await client.request("GET", "/pay")
        assert server.calls("/pay") == 4  # refused locally, the server saw nothing
        assert refused.value.retry_after is not None and refused.value.retry_after > 25
        clock.shift(30)
        assert client.breaker.state == "half_open"
        for _ in range(2):
            assert (await client.request("GET", "/pay")).status_code == 200
        assert client.breaker.state == "closed"
        assert server.calls("/pay") == 6


async def test_flapping_api_is_absorbed_by_retries(server: ScriptedServer) -> None:
    server.route("/flap", flapping(2))
    async with APIClient("flap", settings(server)) as client:
        statuses = [(await client.request("GET", "/flap")).status_code for _ in range(6)]
    assert statuses == [200] * 6
    assert server.calls("/flap") > 6  # some calls needed a second attempt


async def test_rate_adapts_down_under_throttling_and_back_up_while_headers_show_room(
    server: ScriptedServer,
) -> None:
    roomy = Reply(headers={"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "90"})
    throttled = Reply(status=429, headers={"Retry-After": "0"})
    server.route("/r", sequence(throttled, throttled, Reply(status=503), then=roomy))
    api = settings(
        server,
        retry={"max_attempts": 5},
        rate_limit={
            "start": 40,
            "min": 5,
            "max": 80,
            "burst": 5,
            "increase_step": 10,
            "decrease_interval": 0,
            "increase_interval": 0,
        },
    )
    async with APIClient("r", api) as client:
        await client.request("GET", "/r")
        assert client.limiter.decreases == 3
        assert client.limiter.rate == 15  # 40 -> 20 -> 10 -> 5, then +10 on the first roomy success
        for _ in range(3):
            await client.request("GET", "/r")
        assert client.limiter.rate == 45  # back above where it started
        server.route("/r", Reply(headers={"RateLimit-Limit": "100", "RateLimit-Remaining": "2"}))
        await client.request("GET", "/r")
        assert client.limiter.rate == 45  # 2% left: no more growth


async def test_lowered_rate_really_paces_calls(server: ScriptedServer) -> None:
    api = settings(server, rate_limit={"start": 50, "min": 50, "max": 50, "burst": 1})
    async with APIClient("paced", api) as client:
        await client.batch([CallSpec("GET", "/p") for _ in range(6)], concurrency=6)
    arrivals = server.arrivals("/p")
    assert arrivals[-1] - arrivals[0] >= 5 * 0.02 * 0.9  # five gaps of 20 ms at 50/s


async def test_retry_after_seconds_is_honoured(server: ScriptedServer) -> None:
    server.route("/t", rate_limited(1, retry_after="1"))
    async with APIClient("t", settings(server, retry={"max_delay": 2})) as client:
        assert (await client.request("GET", "/t")).status_code == 200
    first, second = server.arrivals("/t")
    assert second - first >= 0.99


async def test_retry_after_http_date_is_honoured(server: ScriptedServer) -> None:
    not_before = int(time.time()) + 2  # an HTTP date has whole seconds
    when = format_datetime(datetime.fromtimestamp(not_before, tz=UTC), usegmt=True)
    server.route("/d", fail_times(1, status=503, headers={"Retry-After": when}))
    async with APIClient("d", settings(server, retry={"max_delay": 3})) as client:
        assert (await client.request("GET", "/d")).status_code == 200
    first, second = server.arrivals("/d")
    wall_clock = time.time() - time.monotonic()  # arrivals are monotonic times
    # Not before the date (how long after the first try depends on when in its second the test began).
    assert second + wall_clock >= not_before - 0.01
    assert second > first


async def test_a_slowing_server_times_out_lowers_the_rate_and_is_retried(server: ScriptedServer) -> None:
    server.route("/slow", sequence(Reply(delay=0.5), then=Reply(delay=0.01)))
    api = settings(server, timeouts={"attempt": 0.1, "overall": 2}, rate_limit={"start": 100, "min": 1})
    async with APIClient("slow", api) as client:
        assert (await client.request("GET", "/slow")).status_code == 200
        assert client.limiter.rate == 50
    assert server.calls("/slow") == 2


async def test_overall_deadline_caps_every_retry(server: ScriptedServer) -> None:
    server.route("/stuck", Reply(delay=1.0))
    api = settings(server, timeouts={"attempt": 0.1, "overall": 0.25}, retry={"max_attempts": 10})
    async with APIClient("stuck", api) as client:
        started = time.monotonic()
        with pytest.raises(RetryableError) as error:
            await client.request("GET", "/stuck")
        assert time.monotonic() - started < 0.45
    assert isinstance(error.value, CallTimeout | RetryableError)
    assert server.calls("/stuck") <= 3


async def test_batch_concurrency_is_bounded_and_results_keep_input_order(server: ScriptedServer) -> None:
    server.default = lambda _index: Reply(delay=0.03)
    calls = [CallSpec("GET", f"/item/{n}") for n in range(20)]
    async with APIClient("batch", settings(server)) as client:
        results = await client.batch(calls, concurrency=4)
    assert server.max_in_flight == 4
    assert [r.request.url.path for r in results if not isinstance(r, Exception)] == [c.url for c in calls]


async def test_batch_fail_fast_stops_early_against_a_real_server(server: ScriptedServer) -> None:
    server.default = lambda _index: Reply(delay=0.01)
    server.route("/item/2", Reply(status=404))
    calls = [CallSpec("GET", f"/item/{n}") for n in range(40)]
    async with APIClient("batch", settings(server)) as client:
        with pytest.raises(Exception, match="404"):
            await client.batch(calls, concurrency=2, fail_fast=True)
        await asyncio.sleep(0)
    assert server.calls() < 10
