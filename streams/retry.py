"""The retry stage: ``webhooks.retry.{tier}`` → back to ``webhooks.ready.{provider}`` once due.

Every record in a tier waits about as long as the others, so the head of each partition is (nearly)
the first one due. The handler forwards the due prefix of each partition; at the first record not yet
due it stops, and the loop commits up to there, seeks back and pauses that partition until it is due.
Nothing sleeps while holding a transaction open.

Two records must not stop a tier: one whose ``not_before`` is far past what its tier ever schedules
(written by an older version or by hand) waits no longer than the tier's longest wait from when it was
written, and one whose provider is no longer configured (its ready topic is gone) is dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from aiokafka import TopicPartition
from pydantic import ValidationError

from schemas.deadletter import DeadLetter, dead_letter_id
from schemas.envelope import DeliveryError, WebhookEnvelope
from schemas.headers import DESTINATION_HEADER
from schemas.retry import RetryRecord
from schemas.topics import PipelineTopics
from streams.eos_types import Batch, Out, Outcome, Record, StatelessHandler
from streams.metrics import Metrics
from streams.poison import is_infrastructure, origin_of, quarantine, reason_of, unprocessable

log = logging.getLogger(__name__)


class RetryHandler(StatelessHandler):
    """Handler for the transactional loop over one retry tier."""

    def __init__(
        self,
        *,
        tier: str,
        topics: PipelineTopics,
        metrics: Metrics,
        delay_seconds: float,
        jitter: float,
        providers: Iterable[str],
    ) -> None:
        """``delay_seconds`` and ``jitter`` are the tier's: no record waits longer than
        ``delay_seconds * (1 + jitter)`` after its timestamp. ``providers`` are the configured ones."""
        self.tier = tier
        self._topics = topics
        self._metrics = metrics
        self._longest_wait = timedelta(seconds=delay_seconds * (1 + jitter))
        self._providers = frozenset(providers)

    async def handle(self, batch: Batch) -> Outcome:
        outcome = Outcome()
        now = datetime.now(UTC)
        loop_now = asyncio.get_running_loop().time()
        for tp, records in batch.items():
            for record in records:
                try:
                    due = self._one(record, now)
                except Exception as exc:
                    due = self._poison(record, exc)
                if not isinstance(due, Out):  # not due for ``due`` seconds: stop here, pause until then
                    outcome.stop_at[tp] = record.offset
                    outcome.resume_at[tp] = loop_now + due
                    break
                due.origin = origin_of(record)
                outcome.records.append(due)
        return outcome

    def _one(self, record: Record, now: datetime) -> Out | float:
        """The record to forward, its quarantine record if unreadable, or the seconds until it is due."""
        try:
            retry = RetryRecord.model_validate_json(record.value or b"")
        except ValidationError as exc:
            self._metrics[f"retry.{self.tier}.quarantined"] += 1
            log.error(
                "unreadable retry record %s[%d]@%d quarantined: %s",
                record.topic,
                record.partition,
                record.offset,
                exc.errors(include_url=False, include_input=False)[0]["msg"],
            )
            return quarantine(self._topics.quarantine, record, "invalid_record", reason_of(exc))
        envelope = retry.envelope
        if envelope.provider not in self._providers:  # nothing to wait for: it can go nowhere
            return self._unknown_provider(record, retry, now)
        due = self._due(record, retry)
        wait = (due - now).total_seconds()
        if wait > 0:
            return wait
        if retry.not_before > now:
            self._metrics[f"retry.{self.tier}.cut_short"] += 1
            log.warning(
                "retry record %s[%d]@%d asked to wait until %s, past its tier's longest wait: sent at %s",
                record.topic,
                record.partition,
                record.offset,
                retry.not_before.isoformat(),
                due.isoformat(),
            )
        self._metrics[f"retry.{self.tier}.forwarded"] += 1
        return Out(
            self._topics.ready(envelope.provider),
            record.key,
            envelope.model_dump_json().encode(),
            ((DESTINATION_HEADER, retry.destination.encode()),),
            follow=TopicPartition(record.topic, record.partition),
        )

    def _due(self, record: Record, retry: RetryRecord) -> datetime:
        """``not_before``, cut to the tier's longest wait from the record's timestamp (when it has one).

        The head of a partition pauses the whole partition: one record due in a year would hold back
        every retry behind it. :meth:`RetryPolicy.schedule` never writes such a record; this bounds any
        record anyone wrote.
        """
        if record.timestamp < 0:
            return retry.not_before
        written = datetime.fromtimestamp(record.timestamp / 1000, UTC)
        return min(retry.not_before, written + self._longest_wait)

    def _unknown_provider(self, record: Record, retry: RetryRecord, now: datetime) -> Out:
        """Dead-letter a retry whose provider is no longer configured: its ready topic does not exist.

        Sending it there would wait ``request_timeout_ms`` and raise an infrastructure error, so the
        worker would exit and re-read the same record after every restart.
        """
        envelope = retry.envelope
        self._metrics[f"retry.{self.tier}.unknown_provider"] += 1
        log.error(
            "retry record %s[%d]@%d dead-lettered: provider %r is not configured",
            record.topic,
            record.partition,
            record.offset,
            envelope.provider,
        )
        error = DeliveryError(
            at=now,
            stage="retry",
            destination=retry.destination,
            error_class="unknown_provider",
            message=f"provider {envelope.provider!r} is not configured",
            retryable=False,
            attempt=envelope.attempt,
        )
        failed = envelope.model_copy(update={"errors": [*envelope.errors, error]})
        dead = DeadLetter(
            id=dead_letter_id(envelope.id, retry.destination, envelope.attempt),
            dead_at=now,
            destination=retry.destination,
            reason="permanent",
            final_error=error,
            history=failed.errors,
            envelope=failed,
        )
        return Out(
            self._topics.dlq,
            record.key,
            dead.model_dump_json().encode(),
            follow=TopicPartition(record.topic, record.partition),
        )

    def _poison(self, record: Record, exc: Exception) -> Out:
        """Forwarding ``record`` raised: dead-letter its envelope as ``unprocessable``."""
        if is_infrastructure(exc):
            raise exc
        self._metrics[f"retry.{self.tier}.unprocessable"] += 1
        log.error(
            "retry record %s[%d]@%d dead-lettered, unprocessable: %s",
            record.topic,
            record.partition,
            record.offset,
            reason_of(exc),
        )
        try:
            envelope: WebhookEnvelope | None = RetryRecord.model_validate_json(record.value or b"").envelope
        except ValidationError:
            envelope = None
        return unprocessable((self._topics.dlq, self._topics.quarantine), record, envelope, "retry", exc)
