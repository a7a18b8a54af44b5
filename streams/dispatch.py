"""The dispatch stage: ``webhooks.ready.{provider}`` → destinations, a retry tier or the DLQ.

One handler (and one transactional loop) per provider. A record carrying the ``bw-destination`` header
came back from a retry tier and goes to that destination only; otherwise the routes decide. Kafka
destinations produce the normalized :class:`~schemas.events.EventRecord` inside the batch's transaction
(exactly once), with the event's identity and trace as headers (:func:`event_headers`); HTTP
destinations are called before the transaction commits (at least once, with ``Idempotency-Key`` and,
when configured, a Standard Webhooks signature), concurrently up to each destination's limit.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable
from datetime import UTC, datetime

from aiokafka import TopicPartition
from aiolimiter import AsyncLimiter
from pydantic import ValidationError

from schemas.deadletter import DeadLetter, dead_letter_id
from schemas.envelope import DeliveryError, WebhookEnvelope
from schemas.events import MalformedPayload, event_record_json
from schemas.headers import (
    DESTINATION_HEADER,
    ENVELOPE_ID_HEADER,
    EVENT_HEADER_MAX_CHARS,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    PROVIDER_HEADER,
    TRACEPARENT_HEADER,
)
from schemas.retry import RetryRecord
from schemas.topics import PipelineTopics
from services.config import Destination, HttpDestination, KafkaDestination, PipelineSettings
from services.errors import DeliveryFailed, PermanentError
from services.telemetry import child_traceparent
from streams.destinations import Deliverer, header_safe
from streams.eos_types import Batch, Headers, Out, Outcome, Record, StatelessHandler
from streams.metrics import Metrics
from streams.poison import header_text, is_infrastructure, quarantine, reason_of, unprocessable
from streams.policy import RetryPolicy, failures_at
from streams.routing import Router
from streams.shaping import Blocked, Lane, bucket

__all__ = ["DispatchHandler", "event_headers"]
log = logging.getLogger(__name__)


TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
"""A W3C ``traceparent`` of version 00, as the edge writes it (a gateway might write anything)."""


def event_headers(envelope: WebhookEnvelope) -> Headers:
    """The headers of an event record (:mod:`schemas.headers`): its identity and its trace.

    ``traceparent`` is the envelope's, the edge request's span, as it is: dispatch records no span of
    its own, so a consumer's span must hang under one that exists. An envelope without a valid one (a
    gateway that does not trace) starts a new trace, so every record carries one.
    """
    trace = envelope.trace_parent
    if (
        trace is None
        or not TRACEPARENT.fullmatch(trace)
        or trace[3:35] == "0" * 32
        or trace[36:52] == "0" * 16
    ):
        trace = child_traceparent(None)
    headers = [
        (TRACEPARENT_HEADER, trace.encode()),
        (PROVIDER_HEADER, envelope.provider.encode()),
        (ENVELOPE_ID_HEADER, envelope.id.encode()),
    ]
    for name, text in ((EVENT_TYPE_HEADER, envelope.event_type), (EVENT_ID_HEADER, envelope.event_id)):
        value = header_safe(text)
        if len(value) <= EVENT_HEADER_MAX_CHARS:
            headers.append((name, value.encode()))
    return headers


class DispatchHandler(StatelessHandler):
    """Handler for the transactional loop over one provider's ready topic."""

    def __init__(
        self,
        *,
        provider: str,
        pipeline: PipelineSettings,
        topics: PipelineTopics,
        deliverer: Deliverer,
        policy: RetryPolicy,
        metrics: Metrics,
    ) -> None:
        self.provider = provider
        self._destinations: dict[str, Destination] = dict(pipeline.destinations)
        self._router = Router(pipeline.routes)
        self._topics = topics
        self._deliverer = deliverer
        self._policy = policy
        self._metrics = metrics
        self._provider_bucket: AsyncLimiter | None = bucket(pipeline.provider_rates.get(provider))
        self._budget = pipeline.dispatch_batch_seconds
        self._lanes = {
            name: Lane(d.rate, d.concurrency if isinstance(d, HttpDestination) else 1_000_000)
            for name, d in self._destinations.items()
        }

    async def handle(self, batch: Batch) -> Outcome:
        """Dispatch a batch; records whose turn comes after the time budget wait for the next batch.

        Pacing and slow destinations could otherwise hold one batch (and its lock) for minutes, past
        the consumer's poll interval. A deferred record is re-read from its offset, so every output of
        it and of the later records of its partition is dropped here (their HTTP calls, if any were
        made, repeat: at least once, with the same Idempotency-Key).
        """
        deadline = asyncio.get_running_loop().time() + self._budget
        done: list[tuple[TopicPartition, int, list[Out]]] = []
        slow: list[tuple[TopicPartition, int]] = []
        work = []
        for tp, records in batch.items():
            for record in records:
                envelope = self._envelope(record)
                if isinstance(envelope, Out):  # not an envelope: quarantined with its raw bytes
                    done.append((tp, record.offset, [envelope]))
                    continue
                try:
                    names, outs = self._targets(envelope, record, tp)
                    if self._fast(names):
                        outs += [self._to_kafka(envelope, name, tp) for name in names]
                        done.append((tp, record.offset, outs))
                        continue
                except Exception as exc:
                    done.append((tp, record.offset, [self._poison(record, envelope, exc)]))
                    continue
                slow.append((tp, record.offset))
                work.append(
                    self._guarded(record, envelope, self._dispatch(envelope, names, tp, deadline, outs))
                )
        deferred: dict[TopicPartition, int] = {}
        for (tp, offset), outs_or_none in zip(slow, await asyncio.gather(*work), strict=True):
            if outs_or_none is None:
                deferred[tp] = min(offset, deferred.get(tp, offset))
            else:
                done.append((tp, offset, outs_or_none))
        outcome = Outcome(stop_at=deferred)
        for tp, offset, outs in sorted(done, key=lambda item: (item[0], item[1])):
            if tp not in deferred or offset < deferred[tp]:
                origin = (tp.topic, tp.partition, offset)
                for out in outs:
                    out.origin = origin
                outcome.records.extend(outs)
        self._metrics["dispatch.deferred"] += sum(
            1 for tp, records in batch.items() if tp in deferred for r in records if r.offset >= deferred[tp]
        )
        return outcome

    def _envelope(self, record: Record) -> WebhookEnvelope | Out:
        """The record's envelope, or its quarantine record when it is not one (never dropped)."""
        try:
            return WebhookEnvelope.model_validate_json(record.value or b"")
        except ValidationError as exc:  # only a trusted stage writes here: count it, keep it
            first = exc.errors(include_url=False, include_input=False)[0]
            reason = "undecodable" if first["type"] == "json_invalid" else "invalid_envelope"
            self._metrics[f"dispatch.quarantined.{reason}"] += 1
            log.error(
                "unreadable record on %s[%d]@%d quarantined: %s",
                record.topic,
                record.partition,
                record.offset,
                first["msg"],
            )
            return quarantine(self._topics.quarantine, record, reason, reason_of(exc))

    def _poison(self, record: Record, envelope: WebhookEnvelope, exc: Exception) -> Out:
        """Handling ``record`` raised: dead-letter it as ``unprocessable`` (infrastructure re-raises)."""
        if is_infrastructure(exc):
            raise exc
        self._metrics["dispatch.unprocessable"] += 1
        log.error(
            "record %s[%d]@%d dead-lettered, unprocessable: %s",
            record.topic,
            record.partition,
            record.offset,
            reason_of(exc),
        )
        return unprocessable((self._topics.dlq, self._topics.quarantine), record, envelope, "dispatch", exc)

    async def _guarded(
        self, record: Record, envelope: WebhookEnvelope, work: Awaitable[list[Out] | None]
    ) -> list[Out] | None:
        try:
            return await work
        except Exception as exc:
            return [self._poison(record, envelope, exc)]

    def _targets(
        self, envelope: WebhookEnvelope, record: Record, tp: TopicPartition
    ) -> tuple[tuple[str, ...], list[Out]]:
        """The envelope's known destinations, and dead letters for destinations no longer configured.

        A ``bw-destination`` header without value or not UTF-8 raises :class:`BadHeader`.
        """
        only = header_text(record, DESTINATION_HEADER)
        names = (only,) if only is not None else self._router.route(envelope.provider, envelope.event_type)
        if not names:
            self._metrics["dispatch.unrouted"] += 1
        dead = [
            self._failed(
                envelope,
                name,
                PermanentError(f"{name!r} is not configured", error_class="unknown_destination"),
                tp,
            )
            for name in names
            if name not in self._destinations  # a retry for a destination removed from the configuration
        ]
        return tuple(name for name in names if name in self._destinations), dead

    def _fast(self, names: tuple[str, ...]) -> bool:
        return self._provider_bucket is None and all(
            isinstance(self._destinations[name], KafkaDestination) and self._lanes[name].unpaced
            for name in names
        )

    async def _dispatch(
        self,
        envelope: WebhookEnvelope,
        names: tuple[str, ...],
        tp: TopicPartition,
        deadline: float,
        outs: list[Out],
    ) -> list[Out] | None:
        """Outputs for one record, or ``None`` when its turn came after ``deadline`` (nothing was sent)."""
        loop = asyncio.get_running_loop()
        called = False  # once an endpoint was called, the record is finished whatever the time
        for name in names:
            destination = self._destinations[name]
            lane = self._lanes[name]
            if isinstance(destination, KafkaDestination):
                async with lane.slot(self._provider_bucket):
                    if not called and loop.time() > deadline:
                        return None
                    try:
                        outs.append(self._to_kafka(envelope, name, tp))
                    except Exception as exc:  # this destination only: the others keep their outputs
                        outs.append(self._unprocessable_at(envelope, name, exc, tp))
                continue
            wait_until = min(loop.time() + destination.max_inline_wait_seconds, deadline)
            try:
                async with lane.slot(self._provider_bucket, wait_until):
                    if not called and loop.time() > deadline:
                        return None
                    called = True
                    await self._deliverer.deliver(envelope, destination, name=name)
            except Blocked as blocked:
                outs.append(self._park(envelope, name, blocked.wait, tp))
            except DeliveryFailed as exc:
                if exc.retry_after is not None:
                    lane.cool_down(exc.retry_after)
                outs.append(self._failed(envelope, name, exc, tp))
            except Exception as exc:  # a bug or an input no one foresaw, at this destination only
                outs.append(self._unprocessable_at(envelope, name, exc, tp))
            else:
                self._metrics.delivered(name, envelope.received_at)
        return outs

    def _unprocessable_at(
        self, envelope: WebhookEnvelope, name: str, exc: Exception, tp: TopicPartition
    ) -> Out:
        """Dead-letter ``envelope`` for destination ``name`` only, naming the exception; a replay goes there.

        Guarding the whole record instead would throw away what its other destinations already got
        (outputs built, endpoints called) and leave a dead letter that names no destination.
        """
        if is_infrastructure(exc):
            raise exc
        log.error("dispatch of %s to %s raised %s", envelope.key, name, reason_of(exc))
        return self._failed(envelope, name, PermanentError(reason_of(exc), error_class="unprocessable"), tp)

    def _to_kafka(self, envelope: WebhookEnvelope, name: str, tp: TopicPartition) -> Out:
        destination = self._destinations[name]
        assert isinstance(destination, KafkaDestination)
        try:
            record = event_record_json(envelope)
        except MalformedPayload as exc:
            return self._failed(envelope, name, PermanentError(str(exc), error_class="malformed_payload"), tp)
        self._metrics.delivered(name, envelope.received_at)
        topic = self._topics.name(destination.topic)
        return Out(topic, envelope.key.encode(), record, event_headers(envelope), follow=tp)

    def _park(self, envelope: WebhookEnvelope, name: str, wait: float, tp: TopicPartition) -> Out:
        """The destination is cooling down for longer than we wait in line: wait in a tier, no attempt."""
        self._metrics[f"dispatch.parked.{name}"] += 1
        tier, not_before = self._policy.schedule(1, datetime.now(UTC), retry_after=wait)
        retry = RetryRecord(tier=tier, not_before=not_before, destination=name, envelope=envelope)
        return Out(
            self._topics.retry(tier), envelope.key.encode(), retry.model_dump_json().encode(), follow=tp
        )

    def _failed(self, envelope: WebhookEnvelope, name: str, exc: DeliveryFailed, tp: TopicPartition) -> Out:
        now = datetime.now(UTC)
        error = DeliveryError(
            at=now,
            stage="dispatch",
            destination=name,
            error_class=exc.error_class,
            message=str(exc)[:500],
            retryable=exc.retryable,
            attempt=envelope.attempt + 1,
        )
        failed = envelope.model_copy(
            update={"attempt": envelope.attempt + 1, "errors": [*envelope.errors, error]}
        )
        destination = self._destinations.get(name)
        limit = destination.max_attempts if isinstance(destination, HttpDestination) else None
        key = envelope.key.encode()
        if exc.retryable and not self._policy.exhausted(failed, name, limit):
            self._metrics[f"dispatch.retried.{name}"] += 1
            tier, not_before = self._policy.schedule(failures_at(failed, name), now, exc.retry_after)
            retry = RetryRecord(tier=tier, not_before=not_before, destination=name, envelope=failed)
            return Out(self._topics.retry(tier), key, retry.model_dump_json().encode(), follow=tp)
        self._metrics[f"dispatch.dead.{name}"] += 1
        dead = DeadLetter(
            id=dead_letter_id(envelope.id, name, failed.attempt),
            dead_at=now,
            destination=name,
            reason="attempts_exhausted" if exc.retryable else "permanent",
            final_error=error,
            history=failed.errors,
            envelope=failed,
        )
        return Out(self._topics.dlq, key, dead.model_dump_json().encode(), follow=tp)
