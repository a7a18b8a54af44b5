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

from pydantic import ValidationError

from schemas.retry import RetryRecord
from streams.dispatch import DESTINATION_HEADER
from streams.eos_types import Batch, Out, Outcome, StatelessHandler
from streams.metrics import Metrics
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
                    retry = RetryRecord.model_validate_json(record.value or b"")
                except ValidationError as exc:
                    self._metrics[f"retry.{self.tier}.invalid"] += 1
                    log.error(
                        "unreadable retry record %s[%d]@%d: %s", tp.topic, tp.partition, record.offset, exc
                    )
                    continue
                wait = (retry.not_before - now).total_seconds()
                if wait > 0:
                    outcome.stop_at[tp] = record.offset
                    outcome.resume_at[tp] = loop_now + wait
                    break
                envelope = retry.envelope
                self._metrics[f"retry.{self.tier}.forwarded"] += 1
                outcome.records.append(
                    Out(
                        self._topics.ready(envelope.provider),
                        record.key,
                        envelope.model_dump_json().encode(),
                        ((DESTINATION_HEADER, retry.destination.encode()),),
                        follow=tp,
                    )
                )
        return outcome
