"""One entry point for operator actions, so the CLI and the HTTP API return the same data.

Every method returns a typed result (:mod:`services.operators.views`, :class:`ActionReport`,
:class:`PipelineStats`); ``views.to_json`` writes any of them as the API answers.

>>> ops = Operators.of(settings)  # doctest: +SKIP
>>> await ops.listing(DlqFilter(provider="stripe", since=parse_time("2h")))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from schemas.signing import EnvelopeSigner
from schemas.topics import PipelineTopics
from services.config import BreakwaterSettings
from services.kafka.clients import KafkaTarget
from services.operators.dlq_index import DlqEntry, DlqIndex, load_index
from services.operators.filters import DlqFilter, FilterError
from services.operators.replay import REPLAY_TRANSACTIONAL_ID, ActionReport, DlqActions, Progress
from services.operators.stats import HealthThresholds, PipelineStats, collect_stats
from services.operators.views import DlqDetail, DlqListing, entry_detail, entry_summary
from streams.topics import pipeline_topics

__all__ = ["Operators", "Selection"]


@dataclass(frozen=True)
class Selection:
    """The dead letters an action will touch, and the ids asked for that do not exist."""

    entries: list[DlqEntry]
    missing: list[str]


@dataclass(frozen=True)
class Operators:
    bootstrap: KafkaTarget
    topics: PipelineTopics
    scan_limit: int = 200_000
    transactional_id: str = REPLAY_TRANSACTIONAL_ID
    signer: EnvelopeSigner | None = None

    @classmethod
    def of(cls, settings: BreakwaterSettings, **overrides: Any) -> Operators:
        """From the settings; replays are signed like the edge signs, so they look like any record."""
        topics = pipeline_topics(settings)
        base = cls(
            bootstrap=settings.kafka,
            topics=topics,
            transactional_id=topics.replay_transactional_id,
            signer=EnvelopeSigner.of(settings.signing),
        )
        return replace(base, **overrides)

    async def index(self) -> DlqIndex:
        return await load_index(self.bootstrap, self.topics, max_records=self.scan_limit)

    async def listing(self, criteria: DlqFilter) -> DlqListing:
        index = await self.index()
        items = [entry_summary(e) for e in index.select(criteria)]
        return DlqListing(items=items, count=len(items), truncated=index.truncated)

    async def show(self, id_or_prefix: str) -> DlqDetail | None:
        """The whole record, or None; raises ``AmbiguousId`` for a prefix that names several."""
        index = await self.index()
        entry = index.find(id_or_prefix)
        return entry_detail(entry, index.related(entry)) if entry else None

    async def counts(self, criteria: DlqFilter | None = None) -> dict[str, int]:
        return dict((await self.index()).counts(criteria))

    async def select(self, criteria: DlqFilter, *, everything: bool = False) -> Selection:
        """Entries named by id (any state, unique prefixes allowed) or matching the filters.

        Refuses a selection with no criteria unless ``everything``: replaying the whole DLQ by
        accident would flood the destinations that failed in the first place.
        """
        if not criteria.narrows and not everything:
            raise FilterError("give ids or at least one filter (or ask for everything explicitly)")
        index = await self.index()
        if not criteria.ids:
            return Selection(index.select(criteria), [])
        found: dict[str, DlqEntry] = {}
        missing = []
        for ident in sorted(criteria.ids):
            entry = index.find(ident)
            if entry is None:
                missing.append(ident)
            else:
                found[entry.id] = entry
        return Selection(list(found.values()), missing)

    def _actions(self) -> DlqActions:
        return DlqActions(
            self.bootstrap, self.topics, transactional_id=self.transactional_id, signer=self.signer
        )

    async def replay(
        self, selection: Selection, *, by: str, dry_run: bool = False, progress: Progress | None = None
    ) -> ActionReport:
        report = await self._actions().replay(selection.entries, by=by, dry_run=dry_run, progress=progress)
        report.failed += [(ident, "not found") for ident in selection.missing]
        return report

    async def discard(
        self,
        selection: Selection,
        *,
        by: str,
        notes: str | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> ActionReport:
        actions = self._actions()
        report = await actions.discard(
            selection.entries, by=by, notes=notes, dry_run=dry_run, progress=progress
        )
        report.failed += [(ident, "not found") for ident in selection.missing]
        return report

    async def stats(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        thresholds: HealthThresholds | None = None,
    ) -> PipelineStats:
        index = await self.index()
        return await collect_stats(
            self.bootstrap,
            self.topics,
            index,
            since=since,
            until=until,
            thresholds=thresholds,
            max_records=self.scan_limit,
        )
