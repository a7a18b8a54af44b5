"""The one way Breakwater calls an HTTP API: paced, retried, guarded by a breaker, bounded in time.

>>> async with APIClient("payments", settings) as client:  # doctest: +SKIP
...     response = await client.request("POST", "/v1/charges", json=body, idempotency_key="stripe:evt_1")

A call returns the :class:`httpx.Response` (status < 400) or raises an error from
:mod:`services.outbound.errors`: a ``RetryableError`` (with ``retry_after`` when known) or a
``PermanentError``, so the caller routes it to a retry tier or the dead-letter topic by asking the error.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, stop_before_delay
from tenacity.stop import stop_base

from services.errors import BreakwaterError, RetryableError
from services.outbound.backoff import BackoffWait
from services.outbound.batch import CallSpec, run_bounded
from services.outbound.breaker import CircuitBreaker, StateListener
from services.outbound.config import APISettings
from services.outbound.errors import (
    CircuitOpen,
    DeadlineExceeded,
    InvalidRequest,
    PermanentStatus,
    RetryableStatus,
    translate_transport_error,
)
from services.outbound.headers import parse_rate_limit, parse_retry_after
from services.outbound.limiter import AdaptiveLimiter

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


def _retryable(exc: BaseException) -> bool:
    # An open circuit or a spent deadline will not change by retrying within this call.
    return isinstance(exc, RetryableError) and not isinstance(exc, CircuitOpen | DeadlineExceeded)


def _log_retry(api: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.info(
            "%s: attempt %d failed (%s), retrying in %.3fs",
            api,
            state.attempt_number,
            error,
            state.upcoming_sleep,
        )

    return before_sleep


class _StopIfWaitExceeds(stop_base):
    """Stop when the server asks for a longer wait than ``max_delay``: the caller schedules that retry."""

    def __init__(self, max_delay: float) -> None:
        self.max_delay = max_delay

    def __call__(self, retry_state: RetryCallState) -> bool:
        return retry_state.upcoming_sleep > self.max_delay


class APIClient:
    """A pooled :class:`httpx.AsyncClient` for one configured API, with limiter, retries and breaker.

    ``transport`` is for unit tests (``httpx.MockTransport``); ``clock`` and ``rng`` make timing testable.
    """

    def __init__(
        self,
        name: str,
        settings: APISettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        breaker_listener: StateListener | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._clock = clock
        t, pool = settings.timeouts, settings.pool
        self._http = httpx.AsyncClient(
            base_url=str(settings.base_url),
            headers={key: value.get_secret_value() for key, value in settings.headers.items()},
            timeout=httpx.Timeout(t.attempt, connect=min(t.connect, t.attempt)),
            limits=httpx.Limits(
                max_connections=pool.max_connections,
                max_keepalive_connections=pool.max_keepalive_connections,
                keepalive_expiry=pool.keepalive_expiry,
            ),
            http2=pool.http2,
            transport=transport,
            follow_redirects=settings.follow_redirects,
            verify=settings.verify_tls,
        )
        self._full_timeout = httpx.Timeout(t.attempt, connect=min(t.connect, t.attempt)).as_dict()
        self.limiter = AdaptiveLimiter(settings.rate_limit, clock=clock)
        self.breaker = CircuitBreaker(settings.breaker, name=name, clock=clock, listener=breaker_listener)
        r = settings.retry
        self._retrying = AsyncRetrying(
            stop=self._stop(t.overall),
            wait=BackoffWait(r, rng=rng),
            retry=retry_if_exception(_retryable),
            before_sleep=_log_retry(name),
            reraise=True,
        )

    def _stop(self, overall: float) -> stop_base:
        """Stop after ``max_attempts``, before sleeping past ``overall``, or when asked to wait too long."""
        r = self.settings.retry
        return (
            stop_after_attempt(r.max_attempts) | stop_before_delay(overall) | _StopIfWaitExceeds(r.max_delay)
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        idempotency_key: str | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one call (retrying as configured) and return a response with status < 400.

        ``url`` is a path under ``base_url`` or an absolute URL. A non-idempotent method (POST, PATCH)
        is retried only when it carries ``idempotency_key``. ``timeout`` overrides the overall deadline.
        """
        method = method.upper()
        s = self.settings
        call_headers = {s.request_id_header: uuid.uuid4().hex}
        if idempotency_key is not None:
            call_headers[s.idempotency_header] = idempotency_key
        if headers:
            call_headers.update(headers)
        try:
            request = self._http.build_request(
                method, url, json=json, content=content, headers=call_headers, params=params
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, TypeError, ValueError) as exc:
            raise InvalidRequest(f"{self.name}: cannot build {method} {url}: {exc}") from exc
        overall = timeout if timeout is not None else s.timeouts.overall
        deadline = self._clock() + overall
        may_retry = s.retry.max_attempts > 1 and (method in IDEMPOTENT_METHODS or idempotency_key is not None)
        try:
            async with asyncio.timeout(overall):
                try:  # the first attempt runs outside tenacity: most calls need no more, and it is cheaper
                    return await self._attempt(request, deadline)
                except RetryableError as first:
                    if not (may_retry and _retryable(first)):
                        raise
                    return await self._retry(request, deadline, first, None if timeout is None else overall)
        except TimeoutError as exc:
            raise DeadlineExceeded(f"{self.name}: {method} {url} took longer than {overall}s") from exc

    async def _retry(
        self, request: httpx.Request, deadline: float, first: RetryableError, overall: float | None
    ) -> httpx.Response:
        """Attempts 2..n under tenacity, which is handed the first failure as its attempt 1."""
        replay = [first]

        async def attempt() -> httpx.Response:
            if replay:
                raise replay.pop()
            return await self._attempt(request, deadline)

        retrying = self._retrying.copy() if overall is None else self._retrying.copy(stop=self._stop(overall))
        return await retrying(attempt)

    async def batch(
        self, calls: Sequence[CallSpec], *, concurrency: int | None = None, fail_fast: bool = False
    ) -> list[httpx.Response | BreakwaterError]:
        """Run ``calls`` with bounded concurrency; results (or errors) in input order."""

        async def one(spec: CallSpec) -> httpx.Response:
            return await self.request(
                spec.method,
                spec.url,
                idempotency_key=spec.idempotency_key,
                json=spec.json,
                content=spec.content,
                headers=spec.headers,
                params=spec.params,
            )

        limit = concurrency or self.settings.batch_concurrency
        return await run_bounded(calls, one, concurrency=limit, fail_fast=fail_fast)

    def _attempt_timeout(self, deadline: float) -> dict[str, float | None]:
        """The attempt's httpx timeouts, clipped so no attempt outlives the call's deadline."""
        t = self.settings.timeouts
        remaining = deadline - self._clock()
        if remaining >= t.attempt:
            return self._full_timeout  # the usual case: built once
        attempt = max(remaining, 0.001)
        return httpx.Timeout(attempt, connect=min(t.connect, attempt)).as_dict()

    async def _attempt(self, request: httpx.Request, deadline: float) -> httpx.Response:
        ticket = self.breaker.before_call()
        try:
            await self.limiter.acquire(deadline=deadline)
            request.extensions["timeout"] = self._attempt_timeout(deadline)
            response = await self._http.send(request)
        except httpx.TransportError as exc:
            error = translate_transport_error(
                exc, api=self.name, retryable=self.settings.retry.retryable_errors
            )
            if isinstance(error, InvalidRequest):
                self.breaker.release(ticket)  # our mistake, not the API's
            else:
                self.breaker.record_failure(ticket)
                self.limiter.on_failure()
            raise error from exc
        except BaseException:
            self.breaker.release(ticket)
            raise
        return self._judge(response, ticket)

    def _judge(self, response: httpx.Response, ticket: int) -> httpx.Response:
        """Feed the limiter and breaker from one answer, then return it or raise what it means."""
        status = response.status_code
        if status < 400:
            self.breaker.record_success(ticket)
            self.limiter.on_success(parse_rate_limit(response.headers))
            return response
        s = self.settings
        if status in s.breaker.failure_statuses:
            self.breaker.record_failure(ticket)
        else:
            self.breaker.record_success(ticket)  # the API is up; the request was wrong or throttled
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if status == 429:
            self.limiter.on_throttled(retry_after)
        elif status >= 500:
            self.limiter.on_failure()
            if retry_after is not None:
                self.limiter.pause(retry_after)
        what = f"{self.name}: {response.request.method} {response.request.url} answered {status}"
        if status in s.retry.retryable_statuses:
            raise RetryableStatus(what, response=response, retry_after=retry_after)
        raise PermanentStatus(what, response=response)
