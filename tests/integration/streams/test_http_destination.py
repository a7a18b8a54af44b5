"""HTTP destinations on the real broker and a real local HTTP server: retries, dead letters, 429 pacing
and provider isolation."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from itertools import pairwise
from typing import Any

import pytest

from schemas.deadletter import DeadLetter
from tests.integration.streams.http_sink import Sink, serve_sink
from tests.support.pipeline import (
    CommittedReader,
    create_topics,
    envelope,
    produce,
    running_worker,
    settings_of,
)

pytestmark = pytest.mark.kafka


def http_pipeline(url: str, **http: Any) -> dict[str, Any]:
    return {
        "destinations": {"events": {"kind": "kafka"}, "sink": {"kind": "http", "url": url, **http}},
        "routes": [{"destinations": ["events", "sink"]}],
    }


async def test_failing_destination_delivers_or_dead_letters_every_event_once(config: dict[str, Any]) -> None:
    rng = random.Random(3)
    lock = threading.Lock()

    def flaky(key: str, seen: int) -> tuple[int, dict[str, str]]:
        with lock:
            return (500, {}) if rng.random() < 0.4 else (200, {})

    with serve_sink(Sink(flaky)) as sink:
        settings = settings_of(config, max_attempts=3, **http_pipeline(sink.url))
        topics = await create_topics(settings)
        sent = [envelope(random.choice(["stripe", "github"]), f"evt_{i}") for i in range(1000)]
        keys = {e.key for e in sent}
        await produce(settings, sent)
        async with (
            CommittedReader(settings.kafka.servers, topics.dlq) as dlq,
            CommittedReader(settings.kafka.servers, topics.name("webhooks.events")) as events,
            running_worker(settings),
        ):

            def settled(_: CommittedReader) -> bool:
                return len(sink.delivered()) + len(dlq.records) >= len(keys)

            await dlq.until(settled, 90, "every event delivered or dead-lettered")
            await events.until(lambda r: len(r.records) >= len(keys), 30, "events")
            await dlq.settle(1.0)
            await events.settle(0.5)

    delivered = sink.delivered()
    dead = [DeadLetter.model_validate_json(r.value or b"") for r in dlq.records]
    dead_keys = {d.envelope.key for d in dead}
    assert set(delivered) | dead_keys == keys
    assert not set(delivered) & dead_keys
    assert all(count == 1 for count in delivered.values())  # no crash here, so no second delivery either
    assert len(dead) == len(dead_keys)
    assert 0 < len(dead) < 150  # 0.4 ** 3 of 1,000 is about 64
    for letter in dead:
        assert letter.reason == "attempts_exhausted" and letter.destination == "sink"
        assert [e.error_class for e in letter.history] == ["http_500"] * 3
        assert letter.final_error == letter.history[-1] and letter.envelope.attempt == 3
        assert sink.statuses(letter.envelope.key) == [500, 500, 500]
    attempts: dict[str, list[float]] = {}
    for key, _, at in sink.log:
        attempts.setdefault(key, []).append(at)
    gaps = [later - earlier for times in attempts.values() for earlier, later in pairwise(times)]
    assert gaps and min(gaps) >= 0.3 * 0.9 - 0.02  # each retry waited its tier (0.3 s, 0.6 s; jitter 0.1)
    event_keys = [r.key.decode() for r in events.records if r.key]
    assert sorted(event_keys) == sorted(keys)  # the Kafka destination saw each event exactly once


async def test_client_errors_dead_letter_at_once(config: dict[str, Any]) -> None:
    with serve_sink(Sink(lambda key, seen: (422, {}))) as sink:
        settings = settings_of(config, **http_pipeline(sink.url))
        topics = await create_topics(settings)
        await produce(settings, [envelope("stripe", f"evt_{i}") for i in range(20)])
        async with CommittedReader(settings.kafka.servers, topics.dlq) as dlq, running_worker(settings):
            await dlq.until(lambda r: len(r.records) >= 20, 60, "dead letters")
            await dlq.settle(1.0)
    assert len(sink.log) == 20
    dead = [DeadLetter.model_validate_json(r.value or b"") for r in dlq.records]
    assert {d.reason for d in dead} == {"permanent"}
    assert {d.final_error.error_class for d in dead} == {"http_422"}
    assert len({d.id for d in dead}) == 20


async def test_rate_limited_destination_is_paced_not_dead_lettered(config: dict[str, Any]) -> None:
    quota, window = 100, {"start": time.monotonic(), "used": 0}
    lock = threading.Lock()

    def limited(key: str, seen: int) -> tuple[int, dict[str, str]]:
        with lock:
            now = time.monotonic()
            if now - window["start"] >= 1.0:
                window.update(start=now, used=0)
            if window["used"] >= quota:
                return 429, {"retry-after": "1"}
            window["used"] += 1
            return 200, {}

    with serve_sink(Sink(limited)) as sink:
        settings = settings_of(
            config, max_attempts=1, **http_pipeline(sink.url, concurrency=8, max_inline_wait_seconds=2)
        )
        topics = await create_topics(settings)
        sent = [envelope("stripe", f"evt_{i}") for i in range(500)]
        await produce(settings, sent)
        started = time.monotonic()
        async with CommittedReader(settings.kafka.servers, topics.dlq) as dlq, running_worker(settings):
            await dlq.until(lambda _: len(sink.delivered()) >= len(sent), 90, "all delivered")
            elapsed = time.monotonic() - started
            await dlq.settle(1.0)

    assert dlq.records == []  # max_attempts=1: a 429 counted as a failure would have dead-lettered
    assert set(sink.delivered()) == {e.key for e in sent}
    assert all(count == 1 for count in sink.delivered().values())
    windows = elapsed + 1
    rejected = sink.count(429)
    assert rejected <= 8 * windows, f"{rejected} 429s in {elapsed:.1f}s: the worker kept hammering"


async def test_a_slow_provider_does_not_slow_another(config: dict[str, Any]) -> None:
    with serve_sink(Sink(lambda key, seen: (200, {}))) as sink:
        pipeline = {
            "destinations": {"events": {"kind": "kafka"}, "slow": {"kind": "http", "url": sink.url}},
            "routes": [
                {"provider": "stripe", "destinations": ["slow"]},
                {"provider": "github", "destinations": ["events"]},
            ],
            "provider_rates": {"stripe": {"rate": 20, "burst": 1}},
        }
        settings = settings_of(config, **pipeline)
        topics = await create_topics(settings)
        await produce(settings, [envelope("stripe", f"s_{i}") for i in range(100)])
        events_topic = topics.name("webhooks.events")
        async with CommittedReader(settings.kafka.servers, events_topic) as events, running_worker(settings):
            await asyncio.sleep(0)  # stripe's backlog is ahead of github's
            await produce(settings, [envelope("github", f"g_{i}") for i in range(2000)])
            await events.until(lambda r: len(r.records) >= 2000, 30, "github events")
            stripe_done_when_github_finished = len(sink.delivered())
            await events.until(lambda _: len(sink.delivered()) >= 100, 30, "stripe paced deliveries")
            first, last = sink.log[0][2], sink.log[-1][2]
    assert stripe_done_when_github_finished < 60
    assert last - first >= 99 / 20 * 0.9  # paced at 20/s, burst 1
