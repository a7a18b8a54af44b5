"""An HTTP destination behind the outbound client's circuit breaker, on the real broker and a real sink:
a failing endpoint opens the breaker, refused deliveries never reach it and are recorded as
``circuit_open``, and deliveries resume once the endpoint recovers."""

from __future__ import annotations

import threading
from itertools import pairwise
from typing import Any

import pytest

from schemas.retry import RetryRecord
from services.outbound.errors import CircuitOpen
from tests.integration.streams.http_sink import Sink, serve_sink
from tests.support.pipeline import (
    CommittedReader,
    create_topics,
    envelope,
    produce,
    running_worker,
    settings_of,
)
from tests.support.waiting import until

pytestmark = pytest.mark.kafka

CIRCUIT_OPEN = CircuitOpen.error_class
OPEN_FOR = 1.5
MIN_CALLS = 3


def guarded(url: str) -> dict[str, Any]:
    """One HTTP destination, called one at a time so the breaker's decisions are easy to follow."""
    sink = {
        "kind": "http",
        "url": url,
        "concurrency": 1,
        "breaker": {
            "failure_rate": 0.5,
            "min_calls": MIN_CALLS,
            "window": 10,
            "open_for": OPEN_FOR,
            "half_open_max_calls": 1,
        },
        "max_inline_wait_seconds": 0.1,  # refused records wait out the open breaker in a retry tier
    }
    return {"destinations": {"sink": sink}, "routes": [{"destinations": ["sink"]}], "max_attempts": 50}


async def test_an_open_breaker_refuses_without_calling_and_deliveries_resume_after_recovery(
    config: dict[str, Any],
) -> None:
    down = threading.Event()
    down.set()

    def endpoint(key: str, seen: int) -> tuple[int, dict[str, str]]:
        return (500, {}) if down.is_set() else (200, {})

    with serve_sink(Sink(endpoint)) as sink:
        settings = settings_of(config, **guarded(sink.url))
        topics = await create_topics(settings)
        sent = [envelope("stripe", f"evt_{i}") for i in range(10)]
        await produce(settings, sent)
        servers = settings.kafka.servers
        async with (
            CommittedReader(servers, topics.retry("t1")) as t1,
            CommittedReader(servers, topics.retry("t2")) as t2,
            CommittedReader(servers, topics.dlq) as dlq,
            running_worker(settings),
        ):

            def retries() -> list[RetryRecord]:
                return [RetryRecord.model_validate_json(r.value or b"") for r in t1.records + t2.records]

            async def refused_while_down() -> bool:
                await t1.poll()
                await t2.poll()
                refused = any(e.error_class == CIRCUIT_OPEN for r in retries() for e in r.envelope.errors)
                return refused and sink.count(500) > MIN_CALLS  # and a half-open probe failed again

            await until(refused_while_down, timeout=60, what="a delivery refused by the open breaker")
            down.clear()
            await until(lambda: len(sink.delivered()) == len(sent), timeout=60, what="every event delivered")
            await t1.settle(0.5)
            await t2.settle(0.5)
            await dlq.settle(0.5)

    assert dlq.records == []
    assert sink.delivered() == {e.key: 1 for e in sent}
    failed_at = [at for _, status, at in sink.log if status == 500]
    assert len(failed_at) > MIN_CALLS
    # While down, the sink saw the MIN_CALLS calls that opened the breaker, then one probe per open period.
    assert all(later - earlier >= OPEN_FOR * 0.9 for earlier, later in pairwise(failed_at[MIN_CALLS - 1 :]))
    reached = {(h["idempotency-key"], int(h["x-breakwater-attempt"])) for h in sink.requests}
    refused = {
        (r.envelope.key, e.attempt)
        for r in retries()
        for e in r.envelope.errors
        if e.error_class == CIRCUIT_OPEN
    }
    assert refused and not refused & reached  # a refused attempt never reached the endpoint
    history = [e for r in retries() for e in r.envelope.errors]
    assert {e.error_class for e in history} == {"http_500", CIRCUIT_OPEN}
    assert all(e.retryable and e.destination == "sink" for e in history)
