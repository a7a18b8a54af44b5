"""The retry stage: ``webhooks.retry.{tier}`` → back to ``webhooks.ready.{provider}`` once due.

Every record in a tier waits about as long as the others, so the head of each partition is (nearly)
the first one due. The handler forwards the due prefix of each partition; at the first record not yet
due it stops, and the loop commits up to there, seeks back and pauses that partition until it is due.
Nothing sleeps while holding a transaction open.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from aiokafka import TopicPartition
from pydantic import ValidationError

from schemas.envelope import WebhookEnvelope
from schemas.retry import RetryRecord
from streams.eos_types import Batch, Out, Outcome, Record, StatelessHandler
from streams.metrics import Metrics
from streams.poison import (
    DESTINATION_HEADER,
    is_infrastructure,
    origin_of,
    quarantine,
    reason_of,
    unprocessable,
)
from streams.topics import PipelineTopics

log = logging.getLogger(__name__)


class RetryHandler(StatelessHandler):
    """Handler for the transactional loop over one retry tier."""

    def __init__(self, *, tier: str, topics: PipelineTopics, metrics: Metrics) -> None:
        self.tier = tier
        self._topics = topics
        self._metrics = metrics

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
        wait = (retry.not_before - now).total_seconds()
        if wait > 0:
            return wait
        envelope = retry.envelope
        self._metrics[f"retry.{self.tier}.forwarded"] += 1
        return Out(
            self._topics.ready(envelope.provider),
            record.key,
            envelope.model_dump_json().encode(),
            ((DESTINATION_HEADER, retry.destination.encode()),),
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
