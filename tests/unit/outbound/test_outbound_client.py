"""APIClient against httpx.MockTransport: headers, retry rules, error translation, deadlines, batches."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from services.errors import PermanentError, RetryableError
from services.outbound.batch import CallSpec
from services.outbound.client import APIClient
from services.outbound.config import APISettings
from services.outbound.errors import (
    CallTimeout,
    CircuitOpen,
    DeadlineExceeded,
    InvalidRequest,
    NetworkError,
    PermanentNetworkError,
    PermanentStatus,
    RetryableStatus,
)
from services.outbound.manager import APIManager

Handler = Callable[[httpx.Request], httpx.Response]


def api(**overrides: Any) -> APISettings:
    base: dict[str, Any] = {
        "base_url": "http://api.test",
        "retry": {"max_attempts": 3, "base_delay": 0.001, "max_delay": 0.05},
        "rate_limit": {"start": 1000, "max": 1000, "burst": 100},
        "timeouts": {"attempt": 1, "overall": 2},
    }
    for key, value in overrides.items():
        base[key] = base[key] | value if isinstance(value, dict) and key in base else value
    return APISettings.model_validate(base)


class Recorder:
    """A MockTransport handler that answers from a script and keeps every request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def client(recorder: Handler, **overrides: Any) -> APIClient:
    return APIClient("test", api(**overrides), transport=httpx.MockTransport(recorder))


async def test_request_id_per_call_kept_across_retries_and_configured_headers() -> None:
    rec = Recorder(httpx.Response(503), httpx.Response(200))
    async with client(rec, headers={"Authorization": "Bearer t"}) as c:
        await c.request("GET", "/a")
        await c.request("GET", "/a")
    ids = [r.headers["x-request-id"] for r in rec.requests]
    assert len(ids) == 3 and ids[0] == ids[1] != ids[2]
    assert all(r.headers["authorization"] == "Bearer t" for r in rec.requests)


async def test_idempotency_key_header_and_post_with_key_is_retried() -> None:
    rec = Recorder(httpx.Response(502), httpx.Response(201))
    async with client(rec) as c:
        response = await c.request("POST", "/charges", json={"a": 1}, idempotency_key="stripe:evt_1")
    assert response.status_code == 201
    assert [r.headers["idempotency-key"] for r in rec.requests] == ["stripe:evt_1"] * 2
    assert rec.requests[1].content == b'{"a":1}'


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_non_idempotent_call_without_key_is_never_retried(method: str) -> None:
    rec = Recorder(httpx.Response(503), httpx.Response(200))
    async with client(rec) as c:
        with pytest.raises(RetryableStatus):
            await c.request(method, "/charges", json={})
    assert len(rec.requests) == 1


async def test_retryable_status_exhausts_attempts_and_carries_retry_after() -> None:
    rec = Recorder(httpx.Response(429, headers={"Retry-After": "0"}))
    async with client(rec) as c:
        with pytest.raises(RetryableStatus) as error:
            await c.request("GET", "/x")
    assert len(rec.requests) == 3
    assert error.value.status == 429 and error.value.retry_after == 0
    assert isinstance(error.value, RetryableError)


async def test_retry_after_longer_than_max_delay_stops_and_is_left_to_the_caller() -> None:
    rec = Recorder(httpx.Response(503, headers={"Retry-After": "120"}), httpx.Response(200))
    async with client(rec) as c:
        with pytest.raises(RetryableStatus) as error:
            await c.request("GET", "/x")
    assert len(rec.requests) == 1
    assert error.value.retry_after == 120


@pytest.mark.parametrize("status", [400, 401, 404, 422, 501])
async def test_other_statuses_are_permanent_and_not_retried(status: int) -> None:
    rec = Recorder(httpx.Response(status, text="nope"))
    async with client(rec) as c:
        with pytest.raises(PermanentStatus) as error:
            await c.request("GET", "/x")
    assert len(rec.requests) == 1
    assert error.value.response.text == "nope" and isinstance(error.value, PermanentError)


async def test_retryable_statuses_are_per_api() -> None:
    rec = Recorder(httpx.Response(409), httpx.Response(200))
    async with client(rec, retry={"retryable_statuses": [409]}) as c:
        assert (await c.request("GET", "/x")).status_code == 200


@pytest.mark.parametrize(
    ("error", "expected", "kind"),
    [
        (httpx.ConnectError("refused"), NetworkError, "connect"),
        (httpx.ReadError("reset"), NetworkError, "network"),
        (httpx.RemoteProtocolError("bad"), NetworkError, "network"),
        (httpx.ReadTimeout("slow"), CallTimeout, "timeout"),
    ],
)
async def test_transport_errors_are_translated_and_retried(
    error: Exception, expected: type[RetryableError], kind: str
) -> None:
    rec = Recorder(error)
    async with client(rec) as c:
        with pytest.raises(expected) as raised:
            await c.request("GET", "/x")
    assert len(rec.requests) == 3
    assert getattr(raised.value, "kind", "timeout") == kind
    assert raised.value.__cause__ is error


async def test_error_kinds_not_listed_are_permanent() -> None:
    rec = Recorder(httpx.ReadTimeout("slow"))
    async with client(rec, retry={"retryable_errors": ["connect"]}) as c:
        with pytest.raises(PermanentNetworkError):
            await c.request("GET", "/x")
    assert len(rec.requests) == 1


async def test_open_breaker_refuses_without_sending() -> None:
    rec = Recorder(httpx.Response(500))
    async with client(rec, breaker={"min_calls": 2, "open_for": 60}, retry={"max_attempts": 1}) as c:
        for _ in range(2):
            with pytest.raises(RetryableStatus):
                await c.request("GET", "/x")
        with pytest.raises(CircuitOpen) as refused:
            await c.request("GET", "/x")
    assert len(rec.requests) == 2
    assert refused.value.retry_after is not None and 59 < refused.value.retry_after <= 60


async def test_throttling_and_client_errors_do_not_trip_the_breaker() -> None:
    rec = Recorder(httpx.Response(429), httpx.Response(404))
    async with client(rec, breaker={"min_calls": 2}, retry={"max_attempts": 1}) as c:
        for _ in range(4):
            with pytest.raises((RetryableStatus, PermanentStatus)):
                await c.request("GET", "/x")
        assert c.breaker.state == "closed"


async def test_overall_deadline_bounds_a_slow_call() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    c = APIClient("test", api(), transport=httpx.MockTransport(slow))
    async with c:
        with pytest.raises(DeadlineExceeded):
            await c.request("GET", "/x", timeout=0.05)


async def test_attempt_timeout_is_sent_to_the_transport() -> None:
    rec = Recorder(httpx.Response(200))
    async with client(rec, timeouts={"attempt": 0.5, "connect": 0.2, "overall": 3}) as c:
        await c.request("GET", "/x")
    timeout = rec.requests[0].extensions["timeout"]
    assert timeout["read"] == 0.5 and timeout["connect"] == 0.2


async def test_unsupported_scheme_is_invalid_request_and_not_retried() -> None:
    # The real transport refuses the scheme before any network I/O.
    async with APIClient("test", api(breaker={"min_calls": 1})) as c:
        with pytest.raises(InvalidRequest):
            await c.request("GET", "ftp://elsewhere/x")
        assert c.breaker.state == "closed"  # our mistake says nothing about the API


async def test_success_feeds_rate_limit_headers_to_the_limiter() -> None:
    rec = Recorder(
        httpx.Response(
            200, headers={"x-ratelimit-limit": "100", "x-ratelimit-remaining": "10", "x-ratelimit-reset": "5"}
        )
    )
    async with client(rec, rate_limit={"start": 50, "min": 1, "max": 100}) as c:
        await c.request("GET", "/x")
        assert c.limiter.rate == 2  # 10 left for 5 s


async def test_batch_keeps_input_order_and_reports_errors_in_place() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        n = int(request.url.path.rsplit("/", 1)[1])
        return httpx.Response(404 if n == 3 else 200, json=n)

    async with APIClient("test", api(), transport=httpx.MockTransport(handler)) as c:
        results = await c.batch([CallSpec("GET", f"/item/{n}") for n in range(6)], concurrency=2)
    got = [r.json() if isinstance(r, httpx.Response) else "error" for r in results]
    assert got == [0, 1, 2, "error", 4, 5]
    assert isinstance(results[3], PermanentStatus)


async def test_batch_fail_fast_raises_the_first_error_and_stops() -> None:
    rec = Recorder(httpx.Response(404))
    async with client(rec) as c:
        with pytest.raises(PermanentStatus):
            await c.batch([CallSpec("GET", f"/i/{n}") for n in range(50)], concurrency=2, fail_fast=True)
    assert len(rec.requests) < 50


async def test_manager_shares_one_client_per_api_and_names_unknown_ones() -> None:
    manager = APIManager(
        {"a": api()}, transport_factory=lambda _name: httpx.MockTransport(Recorder(httpx.Response(200)))
    )
    async with manager:
        assert manager["a"] is manager["a"]
        assert (await manager["a"].request("GET", "/")).status_code == 200
        with pytest.raises(KeyError, match="configured: \\['a'\\]"):
            manager["b"]
