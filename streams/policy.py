"""Retry policy: which tier, how long (jittered, honouring Retry-After), and when to give up."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas.envelope import WebhookEnvelope
from services.config import RetryTier

# Answers that say "not now" rather than "failed": a 429, or our own breaker refusing while the
# destination is down (nothing was sent). They pace; they count toward the budget only past 4x.
PACING = frozenset({"http_429", "circuit_open"})


def failures_at(envelope: WebhookEnvelope, destination: str, *, count_rate_limits: bool = False) -> int:
    """Failed attempts at ``destination`` since the last replay; pacing answers count only when asked.

    An operator's replay (a ``stage="replay"`` entry, see services/operators/replay.py) gives the
    destination a fresh budget: the history before it stays for reading, but no longer counts.
    """
    errors = envelope.errors
    for index in range(len(errors) - 1, -1, -1):
        if errors[index].stage == "replay":
            errors = errors[index + 1 :]
            break
    return sum(
        1
        for error in errors
        if error.destination == destination and (count_rate_limits or error.error_class not in PACING)
    )


@dataclass(frozen=True)
class RetryPolicy:
    tiers: tuple[RetryTier, ...]
    jitter: float
    max_attempts: int
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def exhausted(self, envelope: WebhookEnvelope, destination: str, max_attempts: int | None = None) -> bool:
        """True once the destination failed ``max_attempts`` times (429s count only past 4x that)."""
        limit = max_attempts or self.max_attempts
        return (
            failures_at(envelope, destination) >= limit
            or failures_at(envelope, destination, count_rate_limits=True) >= 4 * limit
        )

    def schedule(
        self, failures: int, now: datetime, retry_after: float | None = None
    ) -> tuple[str, datetime]:
        """Tier and ``not_before`` for the next attempt after ``failures`` failures (at least one tier).

        A ``retry_after`` longer than the longest tier is cut to that tier's longest wait: a retry tier
        partition waits at its head, so one record asking for a day (or an HTTP date a year away) would
        hold back every retry behind it. The destination may answer 429 again; those count toward the
        budget only past 4x (:meth:`exhausted`), and dispatch's lane cools down for the whole wait.
        """
        index = min(max(failures, 1) - 1, len(self.tiers) - 1)
        if retry_after is not None:
            fitting = [i for i, tier in enumerate(self.tiers) if tier.delay_seconds >= retry_after]
            index = max(index, fitting[0] if fitting else len(self.tiers) - 1)
        tier = self.tiers[index]
        delay = tier.delay_seconds * self.rng.uniform(1 - self.jitter, 1 + self.jitter)
        delay = min(max(delay, retry_after or 0.0), self.longest_wait)
        return tier.name, now + timedelta(seconds=delay)

    @property
    def longest_wait(self) -> float:
        """The longest ``not_before`` any record is given, in seconds from when it is scheduled."""
        return self.tiers[-1].delay_seconds * (1 + self.jitter)
