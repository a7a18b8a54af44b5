"""Dispatch, retry policy and retry tiers without a broker: what goes where after each kind of answer."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from schemas.deadletter import DeadLetter
from schemas.envelope import WebhookEnvelope
from schemas.events import EventRecord
from schemas.headers import DESTINATION_HEADER
from schemas.retry import RetryRecord
from services.config import ConfigError, HttpDestination, RetryTier, load_settings
from services.errors import PermanentError, RetryableError
from services.outbound.config import BreakerSettings, RateLimitSettings
from streams.destinations import OutboundDeliverer, api_settings
from streams.dispatch import DispatchHandler
from streams.metrics import Metrics
from streams.policy import RetryPolicy
from streams.retry import RetryHandler
from streams.routing import Router
from tests.support.pipeline import envelope
from tests.unit.streams.records import TOPICS, record

TIERS = (RetryTier(name="a", delay_seconds=10), RetryTier(name="b", delay_seconds=60))
READY = TOPICS.ready("stripe")
READY_TP = TopicPartition(READY, 0)


class FakeDeliverer:
    def __init__(self, *errors: Exception | None, delay: float = 0.0) -> None:
        self.errors = list(errors)
        self.delay = delay
        self.calls: list[str] = []

    async def deliver(self, envelope: WebhookEnvelope, destination: HttpDestination, *, name: str) -> None:
        self.calls.append(envelope.key)
        await asyncio.sleep(self.delay)
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error


def handler(
    deliverer: FakeDeliverer, max_attempts: int = 3, budget: float = 30, concurrency: int = 16
) -> tuple[DispatchHandler, Metrics]:
    settings = load_settings(
        pipeline={
            "destinations": {
                "events": {"kind": "kafka"},
                "hook": {"kind": "http", "url": "http://h/x", "concurrency": concurrency},
            },
            "dispatch_batch_seconds": budget,
            "routes": [
                {"provider": "stripe", "event_types": ["charge.*"], "destinations": ["events", "hook"]},
                {"provider": "stripe", "event_types": ["payout.*"], "destinations": ["events"]},
            ],
            "max_attempts": max_attempts,
        }
    )
    metrics = Metrics()
    policy = RetryPolicy(TIERS, 0.0, max_attempts, random.Random(1))
    return (
        DispatchHandler(
            provider="stripe",
            pipeline=settings.pipeline,
            topics=TOPICS,
            deliverer=deliverer,
            policy=policy,
            metrics=metrics,
        ),
        metrics,
    )


def ready(item: WebhookEnvelope, destination: str | None = None) -> ConsumerRecord[bytes, bytes]:
    headers = [(DESTINATION_HEADER, destination.encode())] if destination else []
    return record(item.model_dump_json().encode(), key=item.key.encode(), headers=headers, tp=READY_TP)


async def run(dispatch: DispatchHandler, *records: ConsumerRecord[bytes, bytes]) -> list[tuple[str, object]]:
    outcome = await dispatch.handle({READY_TP: list(records)})
    parsed: list[tuple[str, object]] = []
    for out in outcome.records:
        models: dict[str, type[BaseModel]] = {
            TOPICS.dlq: DeadLetter,
            TOPICS.name("webhooks.events"): EventRecord,
        }
        model = models.get(out.topic, RetryRecord)
        parsed.append((out.topic, model.model_validate_json(out.value or b"")))
    return parsed


async def test_routes_send_to_kafka_and_http_and_skip_unmatched_types() -> None:
    fake = FakeDeliverer()
    dispatch, metrics = handler(fake)
    outs = await run(
        dispatch,
        ready(envelope("stripe", "e1", "charge.succeeded")),
        ready(envelope("stripe", "e2", "payout.paid")),
        ready(envelope("stripe", "e3", "customer.created")),
    )
    assert [(topic, getattr(model, "key", None)) for topic, model in outs] == [
        ("webhooks.events", "stripe:e2"),
        ("webhooks.events", "stripe:e1"),
    ]
    assert fake.calls == ["stripe:e1"]
    assert metrics["dispatch.unrouted"] == 1 and metrics["dispatch.delivered.hook"] == 1


async def test_a_retryable_failure_goes_to_the_first_tier_with_history() -> None:
    dispatch, _ = handler(FakeDeliverer(RetryableError("down", error_class="http_503")))
    before = datetime.now(UTC)
    [(topic, retry)] = await run(dispatch, ready(envelope("stripe", "e1", "charge.x"), destination="hook"))
    assert isinstance(retry, RetryRecord) and topic == TOPICS.retry("a")
    assert retry.destination == "hook" and retry.envelope.attempt == 1
    assert [(e.error_class, e.destination, e.attempt) for e in retry.envelope.errors] == [
        ("http_503", "hook", 1)
    ]
    assert before + timedelta(seconds=10) <= retry.not_before <= datetime.now(UTC) + timedelta(seconds=10)


async def test_retry_after_longer_than_a_tier_picks_a_longer_tier() -> None:
    dispatch, _ = handler(FakeDeliverer(RetryableError("slow down", error_class="http_429", retry_after=30)))
    [(topic, retry)] = await run(dispatch, ready(envelope("stripe", "e1", "charge.x"), destination="hook"))
    assert topic == TOPICS.retry("b")
    assert isinstance(retry, RetryRecord)
    assert retry.not_before >= datetime.now(UTC) + timedelta(seconds=29)


async def test_records_queued_behind_a_long_429_are_parked_not_held_for_its_cool_down() -> None:
    # a fixed-window limit: the call in flight learns "60 s" while nine records wait for their turn
    fake = FakeDeliverer(RetryableError("window spent", error_class="http_429", retry_after=60), delay=0.05)
    dispatch, metrics = handler(fake, concurrency=1)
    records = [ready(envelope("stripe", f"e{i}", "charge.x"), destination="hook") for i in range(10)]
    async with asyncio.timeout(5):  # waiting the cool-down out in line took the whole minute
        outs = await run(dispatch, *records)
    assert fake.calls == ["stripe:e0"]  # nothing else was sent into the cool-down
    retries = [retry for _, retry in outs]
    assert all(isinstance(r, RetryRecord) and r.destination == "hook" for r in retries) and len(retries) == 10
    assert [r.envelope.attempt for r in retries if isinstance(r, RetryRecord)] == [1] + [0] * 9
    assert metrics["dispatch.parked.hook"] == 9


async def test_exhausted_attempts_and_permanent_errors_dead_letter() -> None:
    dispatch, _ = handler(
        FakeDeliverer(
            RetryableError("t", error_class="timeout"), PermanentError("gone", error_class="http_404")
        )
    )
    item = envelope("stripe", "e1", "charge.x")
    errors = [
        {
            "at": datetime.now(UTC),
            "stage": "dispatch",
            "destination": "hook",
            "error_class": "timeout",
            "message": "t",
            "retryable": True,
            "attempt": n,
        }
        for n in (1, 2)
    ]
    tried = WebhookEnvelope.model_validate({**item.model_dump(), "attempt": 2, "errors": errors})
    outs = await run(dispatch, ready(tried, "hook"), ready(envelope("stripe", "e2", "charge.x"), "hook"))
    dead = [model for _, model in outs]
    assert all(isinstance(d, DeadLetter) for d in dead)
    exhausted, permanent = dead
    assert isinstance(exhausted, DeadLetter) and isinstance(permanent, DeadLetter)
    assert exhausted.reason == "attempts_exhausted" and len(exhausted.history) == 3
    assert exhausted.final_error.attempt == 3 and exhausted.envelope.attempt == 3
    assert permanent.reason == "permanent" and permanent.final_error.error_class == "http_404"
    again = await run(
        handler(FakeDeliverer(PermanentError("gone", error_class="http_404")))[0],
        ready(envelope("stripe", "e2", "charge.x"), "hook"),
    )
    assert again[0][1].id != permanent.id  # type: ignore[attr-defined]  # a new envelope id, a new letter


async def test_a_malformed_json_body_dead_letters_at_once() -> None:
    item = envelope("stripe", "e1", "payout.paid")
    broken = WebhookEnvelope.model_validate({**item.model_dump(), "body": b"{nope"})
    dispatch, _ = handler(FakeDeliverer())
    [(topic, dead)] = await run(dispatch, ready(broken))
    assert topic == TOPICS.dlq and isinstance(dead, DeadLetter)
    assert dead.final_error.error_class == "malformed_payload" and dead.reason == "permanent"


async def test_rate_limits_are_pacing_until_four_times_max_attempts() -> None:
    policy = RetryPolicy(TIERS, 0.2, 2, random.Random(1))
    item = envelope("stripe", "e1")

    def failed(*classes: str) -> WebhookEnvelope:
        errors = [
            {
                "at": datetime.now(UTC),
                "stage": "dispatch",
                "destination": "hook",
                "error_class": c,
                "message": "",
                "retryable": True,
                "attempt": i + 1,
            }
            for i, c in enumerate(classes)
        ]
        return WebhookEnvelope.model_validate({**item.model_dump(), "errors": errors})

    assert not policy.exhausted(failed("http_429", "http_429", "http_500"), "hook")
    assert policy.exhausted(failed("http_500", "timeout"), "hook")
    assert policy.exhausted(failed(*["http_429"] * 8), "hook")
    assert not policy.exhausted(failed("http_500", "timeout"), "other")
    # a breaker's refusal sent nothing: it paces like a 429
    assert not policy.exhausted(failed("circuit_open", "circuit_open", "http_500"), "hook")


def test_an_operator_replay_gives_a_fresh_budget() -> None:
    policy = RetryPolicy(TIERS, 0.2, 2, random.Random(1))
    item = envelope("stripe", "e1")

    def entry(stage: str, destination: str | None, attempt: int) -> dict[str, object]:
        return {
            "at": datetime.now(UTC),
            "stage": stage,
            "destination": destination,
            "error_class": "http_500" if stage == "dispatch" else "replayed",
            "message": "",
            "retryable": True,
            "attempt": attempt,
        }

    dead = [entry("dispatch", "hook", 1), entry("dispatch", "hook", 2)]
    replayed = [*dead, entry("replay", None, 2)]
    failed_once_more = [*replayed, entry("dispatch", "hook", 3)]

    def as_envelope(errors: list[dict[str, object]]) -> WebhookEnvelope:
        return WebhookEnvelope.model_validate({**item.model_dump(), "errors": errors})

    assert policy.exhausted(as_envelope(dead), "hook")
    assert not policy.exhausted(as_envelope(replayed), "hook")
    assert not policy.exhausted(as_envelope(failed_once_more), "hook")
    assert policy.exhausted(as_envelope([*failed_once_more, entry("dispatch", "hook", 4)]), "hook")


def test_schedule_jitters_within_bounds_and_escalates_tiers() -> None:
    policy = RetryPolicy(TIERS, 0.2, 5, random.Random(2))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    delays = {(policy.schedule(1, now)[1] - now).total_seconds() for _ in range(200)}
    assert min(delays) >= 8 and max(delays) <= 12 and len(delays) > 100
    assert [policy.schedule(n, now)[0] for n in (1, 2, 3, 9)] == ["a", "b", "b", "b"]


@given(retry_after=st.floats(min_value=0, max_value=1e12, allow_nan=False), failures=st.integers(1, 20))
def test_no_retry_after_holds_a_record_past_the_longest_tier(retry_after: float, failures: int) -> None:
    """A tier partition waits at its head: a Retry-After of a year must not hold every retry behind it."""
    policy = RetryPolicy(TIERS, 0.2, 5, random.Random(3))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    tier, not_before = policy.schedule(failures, now, retry_after)
    wait = (not_before - now).total_seconds()
    assert wait <= TIERS[-1].delay_seconds * 1.2
    assert wait >= min(retry_after, TIERS[-1].delay_seconds * 0.8)  # honoured as far as the tiers go
    assert tier == TIERS[-1].name or retry_after <= wait


async def test_retry_tier_forwards_due_records_and_stops_at_the_first_not_due() -> None:
    tp = TopicPartition(TOPICS.retry("a"), 2)
    now = datetime.now(UTC)
    items = [envelope("stripe", f"e{i}") for i in range(3)]
    due = [now - timedelta(seconds=1), now - timedelta(seconds=0.5), now + timedelta(seconds=30)]
    records = [
        record(
            RetryRecord(tier="a", not_before=nb, destination="hook", envelope=e).model_dump_json().encode(),
            key=e.key.encode(),
            offset=10 + i,
            tp=tp,
            timestamp=int(now.timestamp() * 1000),
        )
        for i, (e, nb) in enumerate(zip(items, due, strict=True))
    ]
    retry = RetryHandler(
        tier="a", topics=TOPICS, metrics=Metrics(), delay_seconds=30, jitter=0.1, providers=["stripe"]
    )
    outcome = await retry.handle({tp: records})
    assert [(o.topic, o.key, dict(o.headers)) for o in outcome.records] == [
        (READY, b"stripe:e0", {DESTINATION_HEADER: b"hook"}),
        (READY, b"stripe:e1", {DESTINATION_HEADER: b"hook"}),
    ]
    assert outcome.stop_at == {tp: 12}
    assert outcome.resume_at[tp] - asyncio.get_running_loop().time() == pytest.approx(30, abs=1)


def test_router_matches_provider_and_type_patterns_in_order() -> None:
    settings = load_settings(
        pipeline={
            "destinations": {"a": {"kind": "kafka"}, "b": {"kind": "kafka", "topic": "other"}},
            "routes": [
                {"provider": "*", "event_types": ["*.created"], "destinations": ["a"]},
                {"provider": "github", "event_types": ["push", "*.created"], "destinations": ["b", "a"]},
            ],
        }
    )
    router = Router(settings.pipeline.routes)
    assert router.route("github", "issue.created") == ("a", "b")
    assert router.route("github", "push") == ("b", "a")
    assert router.route("stripe", "push") == ()


def test_routes_naming_unknown_destinations_fail_at_start() -> None:
    with pytest.raises(ConfigError, match=r"routes\[0\] names unknown destination\(s\) \['nope'\]"):
        load_settings(pipeline={"routes": [{"destinations": ["nope"]}]})


def mock_deliverer(
    answer: Callable[[httpx.Request], httpx.Response], destination: HttpDestination
) -> OutboundDeliverer:
    """The real deliverer and outbound client, over an in-process transport."""
    return OutboundDeliverer({"hook": destination}, transport=httpx.MockTransport(answer))


async def outcome_of(deliverer: OutboundDeliverer, destination: HttpDestination) -> object:
    try:
        await deliverer.deliver(envelope("stripe", "evt_9"), destination, name="hook")
    except RetryableError as exc:
        return ("retryable", exc.error_class, exc.retry_after)
    except PermanentError as exc:
        return ("permanent", exc.error_class, None)
    return None


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (200, {}, None),
        (204, {}, None),
        (500, {}, ("retryable", "http_500", None)),
        (501, {}, ("retryable", "http_501", None)),
        (503, {"retry-after": "3"}, ("retryable", "http_503", 3.0)),
        (429, {"retry-after": "7"}, ("retryable", "http_429", 7.0)),
        (408, {}, ("retryable", "http_408", None)),
        (302, {"location": "http://elsewhere/"}, ("permanent", "http_302", None)),
        (404, {}, ("permanent", "http_404", None)),
        (422, {}, ("permanent", "http_422", None)),
        (425, {}, ("permanent", "http_425", None)),
    ],
)
async def test_http_answers_are_classified(status: int, headers: dict[str, str], expected: object) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, headers=headers)

    async with mock_deliverer(answer, HttpDestination(url="http://dest/hook")) as deliverer:
        assert await outcome_of(deliverer, HttpDestination(url="http://dest/hook")) == expected
    assert len(seen) == 1  # one call per delivery: the pipeline retries through its tiers, never inline


async def test_the_deliverer_sends_the_body_and_the_pipeline_headers_once_each() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    item = envelope("stripe", "evt_9", "charge.refunded").model_copy(
        update={"attempt": 2, "trace_parent": trace}
    )
    destination = HttpDestination(url="http://dest/hook")
    async with mock_deliverer(answer, destination) as deliverer:
        await deliverer.deliver(item, destination, name="hook")
    [request] = seen
    assert request.method == "POST" and str(request.url) == "http://dest/hook"
    assert request.content == item.body
    assert request.headers.get_list("idempotency-key") == ["stripe:evt_9"]
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-breakwater-event-type"] == "charge.refunded"
    assert request.headers["x-breakwater-envelope-id"] == item.id
    assert request.headers["x-breakwater-attempt"] == "3"
    assert request.headers["traceparent"].split("-")[1] == trace.split("-")[1]
    assert request.headers["x-request-id"]


@pytest.mark.parametrize(
    ("error", "error_class"),
    [
        (httpx.ConnectTimeout("slow"), "timeout"),
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.ConnectError("refused"), "connect"),
        (httpx.RemoteProtocolError("hung up"), "connect"),
    ],
)
async def test_timeouts_and_refused_connections_are_retryable(error: Exception, error_class: str) -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise error

    destination = HttpDestination(url="http://down/x")
    async with mock_deliverer(boom, destination) as deliverer:
        assert await outcome_of(deliverer, destination) == ("retryable", error_class, None)


async def test_an_open_circuit_refuses_without_calling_and_says_for_how_long() -> None:
    calls: list[httpx.Request] = []

    def failing(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503)

    destination = HttpDestination(
        url="http://dest/hook", breaker=BreakerSettings(failure_rate=0.5, min_calls=2, open_for=30)
    )
    async with mock_deliverer(failing, destination) as deliverer:
        outcomes = [await outcome_of(deliverer, destination) for _ in range(4)]
    assert outcomes[:2] == [("retryable", "http_503", None)] * 2
    for outcome in outcomes[2:]:
        assert isinstance(outcome, tuple) and outcome[:2] == ("retryable", "circuit_open")
        assert 29 <= outcome[2] <= 30  # the breaker's remaining open time: dispatch cools the lane down
    assert len(calls) == 2


def test_destination_defaults_keep_the_pipeline_behaviour() -> None:
    settings = api_settings(
        HttpDestination(url="http://dest/hook", timeout_seconds=4, concurrency=8), lanes=2
    )
    assert settings.retry.max_attempts == 1
    assert not settings.breaker.enabled and not settings.rate_limit.enabled
    assert settings.pool.max_connections == 16
    assert settings.timeouts.attempt == settings.timeouts.overall == 4
    paced = api_settings(
        HttpDestination(url="http://d/", rate_limit=RateLimitSettings(start=50, max=50, min=2))
    )
    assert paced.rate_limit.enabled and (paced.rate_limit.start, paced.rate_limit.min) == (50, 2)
    with pytest.raises(ConfigError, match=r"h\.http\.rate_limit: need min <= start <= max"):
        load_settings(
            pipeline={
                "destinations": {"h": {"kind": "http", "url": "http://d/", "rate_limit": {"max": 0.5}}},
                "routes": [{"destinations": ["h"]}],
            }
        )


async def test_records_whose_turn_comes_after_the_time_budget_wait_for_the_next_batch() -> None:
    slow = FakeDeliverer(delay=0.04)
    dispatch, metrics = handler(slow, budget=0.1, concurrency=1)
    items = [envelope("stripe", f"e{i}", "charge.x") for i in range(8)]
    records = [
        record(e.model_dump_json().encode(), key=e.key.encode(), offset=100 + i, tp=READY_TP)
        for i, e in enumerate(items)
    ]
    outcome = await dispatch.handle({READY_TP: records})
    kept = len(slow.calls)
    assert 1 <= kept < len(items)
    assert outcome.stop_at == {READY_TP: 100 + kept}
    assert slow.calls == [e.key for e in items[:kept]]  # in order, none past the first deferred
    assert [out.key for out in outcome.records] == [e.key.encode() for e in items[:kept]]  # their events only
    assert metrics["dispatch.deferred"] == len(items) - kept


async def test_a_destination_that_raises_dead_letters_there_only_and_the_others_keep_their_outputs() -> None:
    """An exception no one foresaw at one destination must not throw away the record's other outputs."""
    dispatch, _ = handler(FakeDeliverer(ValueError("something no one foresaw")))
    outs = await run(dispatch, ready(envelope("stripe", "e1", "charge.succeeded")))
    assert [topic for topic, _ in outs] == ["webhooks.events", TOPICS.dlq]
    dead = outs[1][1]
    assert isinstance(dead, DeadLetter) and dead.destination == "hook"
    assert dead.final_error.error_class == "unprocessable"
    assert "ValueError: something no one foresaw" in dead.final_error.message


async def test_a_non_ascii_event_type_is_delivered_in_a_header_httpx_accepts() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    destination = HttpDestination(url="http://dest/hook")
    async with mock_deliverer(answer, destination) as deliverer:
        await deliverer.deliver(envelope("stripe", "evt_é", "café.créé"), destination, name="hook")
    [request] = seen
    assert request.headers["x-breakwater-event-type"] == "caf%C3%A9.cr%C3%A9%C3%A9"
    assert request.headers["idempotency-key"] == "stripe:evt_%C3%A9"  # stable, and unique per key
