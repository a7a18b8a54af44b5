"""Replay and discard dead letters, each change published together with its mark in one transaction.

A replay puts the envelope back on ``webhooks.ready.{provider}`` (after dedup: the event was accepted
once) with ``bw-destination`` naming the destination that failed, so the dispatch loop re-delivers it
there only, as it does for a record back from a retry tier, and destinations that succeeded are not
called twice. The envelope keeps its whole error history plus one ``stage="replay"`` entry saying which
dead letter, who and when (the same facts ride in ``bw-replay-of``/``bw-replayed-by``/``bw-replayed-at``
headers). ``attempt`` is kept, not reset: a dead letter's id is derived from the attempt, so a reset
would give the replay's own dead letter the id of the one replayed, already marked, and hide it.

Idempotent: the transactional id is stable, so starting the producer fences any earlier replayer and
settles its open transaction; only then are the marks read (committed only), and records already
marked are skipped. Publish and mark commit together or not at all, so replaying the same records
twice, or from two terminals at once, yields one re-delivery.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import field
from datetime import UTC, datetime
from typing import Literal

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import IllegalOperation, KafkaError, ProducerFenced
from aiokafka.structs import RecordMetadata
from pydantic import field_serializer
from pydantic.dataclasses import dataclass as pydantic_dataclass

from schemas.envelope import DeliveryError
from schemas.headers import DESTINATION_HEADER, REPLAY_OF_HEADER, REPLAYED_AT_HEADER, REPLAYED_BY_HEADER
from schemas.signing import EnvelopeSigner
from schemas.topics import PipelineTopics
from services.kafka import clients
from services.kafka.clients import KafkaTarget
from services.kafka.internals import cluster_metadata
from services.operators.dlq_index import DlqEntry, latest_marks
from services.operators.marks import DlqMark
from services.operators.reader import OPERATOR_CLIENT_ID, read_snapshot, wait_until_stable
from streams.poison import UNROUTED

__all__ = [
    "REPLAY_TRANSACTIONAL_ID",
    "ActionReport",
    "DlqActions",
    "replay_record",
]

log = logging.getLogger(__name__)

REPLAY_TRANSACTIONAL_ID = PipelineTopics().replay_transactional_id  # "breakwater-dlq-replay"
Action = Literal["replay", "discard"]
Progress = Callable[[int], None]
VISIBLE_TIMEOUT = 30.0
Headers = list[tuple[str, bytes]]


@pydantic_dataclass
class ActionReport:
    """What one replay or discard did; ``done`` lists what would be done when ``dry_run``.

    A pydantic dataclass, so :func:`services.operators.views.to_json` writes it as the API answers.
    """

    action: Action
    dry_run: bool
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Already replayed (or, for discard, already marked)."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """``(id, error)``; in JSON each is ``{"id": ..., "error": ...}``."""

    @field_serializer("failed")
    def _failed(self, failed: list[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"id": ident, "error": error} for ident, error in failed]


def replay_record(
    entry: DlqEntry, topics: PipelineTopics, *, by: str, at: datetime, signer: EnvelopeSigner | None = None
) -> tuple[str, bytes, bytes, Headers]:
    """Topic, key, value and headers of the ready record that replays ``entry``."""
    dead = entry.dead
    envelope = dead.envelope
    marker = DeliveryError(
        at=at,
        stage="replay",
        destination=None,  # not a failure at any destination: retry budgets do not count it
        error_class="replayed",
        message=f"replay of dead letter {dead.id} by {by}",
        retryable=True,
        attempt=envelope.attempt,
    )
    value = envelope.model_copy(update={"errors": [*envelope.errors, marker]}).model_dump_json().encode()
    headers: Headers = signer.sign(value) if signer else []
    if dead.destination != UNROUTED:  # a record that failed before routing is routed afresh
        headers.append((DESTINATION_HEADER, dead.destination.encode()))
    headers += [
        (REPLAY_OF_HEADER, dead.id.encode()),
        (REPLAYED_BY_HEADER, by.encode()),
        (REPLAYED_AT_HEADER, at.isoformat().encode()),
    ]
    return topics.ready(envelope.provider), envelope.key.encode(), value, headers


class DlqActions:
    """Replays and discards against one cluster; one instance per command or request."""

    def __init__(
        self,
        bootstrap: KafkaTarget,
        topics: PipelineTopics,
        *,
        transactional_id: str = REPLAY_TRANSACTIONAL_ID,
        signer: EnvelopeSigner | None = None,
        chunk: int = 200,
    ) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._transactional_id = transactional_id
        self._signer = signer
        self._chunk = chunk

    async def replay(
        self, entries: Sequence[DlqEntry], *, by: str, dry_run: bool = False, progress: Progress | None = None
    ) -> ActionReport:
        return await self._apply("replay", entries, by=by, notes=None, dry_run=dry_run, progress=progress)

    async def discard(
        self,
        entries: Sequence[DlqEntry],
        *,
        by: str,
        notes: str | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> ActionReport:
        return await self._apply("discard", entries, by=by, notes=notes, dry_run=dry_run, progress=progress)

    @staticmethod
    def _blocked(action: Action, mark: DlqMark | None) -> bool:
        """Replay skips replayed records (a discarded one may be replayed by id); discard skips marked."""
        if mark is None:
            return False
        return mark.state == "replayed" or action == "discard"

    async def _apply(
        self,
        action: Action,
        entries: Sequence[DlqEntry],
        *,
        by: str,
        notes: str | None,
        dry_run: bool,
        progress: Progress | None,
    ) -> ActionReport:
        report = ActionReport(action, dry_run)
        if dry_run:
            for entry in entries:
                (report.skipped if self._blocked(action, entry.mark) else report.done).append(entry.id)
            if progress:
                progress(len(entries))
            return report
        producer = clients.producer(
            self._bootstrap,
            client_id=OPERATOR_CLIENT_ID,
            transactional_id=self._transactional_id,
            enable_idempotence=True,
            acks="all",
        )
        await producer.start()  # init_transactions: fences an earlier replayer, settles its transaction
        try:
            marks = await self._current_marks()
            todo = []
            for entry in entries:
                if self._blocked(action, marks.get(entry.id)):
                    report.skipped.append(entry.id)
                else:
                    todo.append(entry)
            if action == "replay":
                todo = await self._with_ready_topic(producer, todo, report)
            if progress and report.skipped:
                progress(len(report.skipped))
            written: dict[TopicPartition, int] = {}
            for start in range(0, len(todo), self._chunk):
                chunk = todo[start : start + self._chunk]
                error = await self._commit_chunk(producer, action, chunk, by, notes, written)
                if error is None:
                    report.done += [e.id for e in chunk]
                else:  # the producer's state is unknown now: stop, the operator runs it again
                    report.failed += [(e.id, error) for e in todo[start:]]
                    break
                if progress:
                    progress(len(chunk))
            if written:
                await self._until_visible(written)
        finally:
            await producer.stop()
        return report

    async def _until_visible(self, written: dict[TopicPartition, int]) -> None:
        """Return once committed readers see what was written, so a listing right after shows it.

        A commit is acknowledged when the coordinator has logged it; the markers that move each
        partition's last stable offset past the records are written after that.
        """
        try:
            visible = await wait_until_stable(self._bootstrap, written, timeout=VISIBLE_TIMEOUT)
        except KafkaError as exc:  # the change is committed: only the read-back failed
            log.warning("committed, but could not check it is readable: %s", exc)
            return
        if not visible:
            log.warning("committed, but not yet readable after %.0f s: a listing may lag", VISIBLE_TIMEOUT)

    async def _with_ready_topic(
        self, producer: AIOKafkaProducer, todo: list[DlqEntry], report: ActionReport
    ) -> list[DlqEntry]:
        """Entries whose ready topic exists; a send to a missing one would block until it times out."""
        cluster = await cluster_metadata(producer)
        kept = []
        for entry in todo:
            topic = self._topics.ready(entry.dead.envelope.provider)
            if cluster.partitions_for_topic(topic):
                kept.append(entry)
            else:
                provider = entry.dead.envelope.provider
                report.failed.append((entry.id, f"no topic {topic}: is provider {provider!r} configured?"))
        return kept

    async def _current_marks(self) -> dict[str, DlqMark | None]:
        """Every committed mark, unbounded: a missed mark would mean a second re-delivery."""
        snapshot = await read_snapshot(self._bootstrap, self._topics.dlq_state, max_records=2**62)
        return latest_marks(snapshot.records)

    async def _commit_chunk(
        self,
        producer: AIOKafkaProducer,
        action: Action,
        chunk: list[DlqEntry],
        by: str,
        notes: str | None,
        written: dict[TopicPartition, int],
    ) -> str | None:
        """Publish and mark ``chunk`` in one transaction; the error text when it did not commit.

        On commit, ``written`` gets the highest offset written per partition.
        """
        now = datetime.now(UTC)
        state: Literal["replayed", "discarded"] = "replayed" if action == "replay" else "discarded"
        sent: list[asyncio.Future[RecordMetadata]] = []
        try:
            async with producer.transaction():
                for entry in chunk:
                    topic = None
                    if action == "replay":
                        topic, key, value, headers = replay_record(
                            entry, self._topics, by=by, at=now, signer=self._signer
                        )
                        sent.append(await producer.send(topic, value, key=key, headers=headers))
                    mark = DlqMark(state=state, by=by, at=now, replay_of=entry.id, topic=topic, notes=notes)
                    sent.append(
                        await producer.send(
                            self._topics.dlq_state, mark.model_dump_json().encode(), key=entry.id.encode()
                        )
                    )
        except (ProducerFenced, IllegalOperation):  # another replayer started: its run decides
            return "fenced by another replayer; run again"
        except KafkaError as exc:
            log.error("%s of %d dead letters failed: %s", action, len(chunk), exc)
            return f"{type(exc).__name__}: {exc}"
        # All settled: the commit flushed them. aiokafka commits even when a batch failed for good.
        lost = [error for error in (future.exception() for future in sent) if error is not None]
        if lost:
            log.error(
                "%s of %d dead letters committed, %d records not written: %s",
                action,
                len(chunk),
                len(lost),
                lost[0],
            )
            return f"committed, but {len(lost)} records were not written ({lost[0]}); check the marks"
        for meta in (future.result() for future in sent):
            tp = TopicPartition(meta.topic, meta.partition)
            written[tp] = max(written.get(tp, -1), meta.offset)
        return None
