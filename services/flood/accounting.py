"""The accounting check: every accepted webhook ends in exactly one place, per destination.

DESIGN.md promises that an accepted webhook (unique by ``provider:event_id``) ends in exactly one of
delivered, dead-lettered, quarantined or still in flight. For each destination a key is routed to, it
is classified from what was observed: delivered (the simulator answered 2xx, or the record is on the
events topic), dead-lettered (a DLQ record names that destination), quarantined, or in flight (a
record not yet consumed: inbound, ready or a retry tier). A key in none of them is *lost*; a key both
delivered and dead-lettered is *double*; a delivered key that was never sent is a *phantom*.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

ALLOWED_STATUSES = frozenset({"202", "401", "429", "503"})


@dataclass(frozen=True)
class Observed:
    """What the flood saw at the end, after the worker stopped (a still picture)."""

    accepted: Mapping[str, str]
    """key → event type, for every key the edge answered 202 at least once."""
    sent: frozenset[str]
    delivered: Mapping[str, Counter[str]]
    """destination → key → deliveries (2xx answers, or records on the events topic)."""
    dead: Mapping[str, frozenset[str]]
    quarantined: frozenset[str]
    pending: Mapping[str, frozenset[str]]
    """destination → keys with a record not yet consumed for it."""


@dataclass(frozen=True)
class DestinationAccount:
    destination: str
    routed: int
    delivered: int
    dead_lettered: int
    quarantined: int
    in_flight: int
    lost: int
    double: int
    phantom: int
    redelivered: int
    exactly_once: bool
    """Kafka destinations promise exactly once: a redelivery fails the check; HTTP is at least once."""

    @property
    def passed(self) -> bool:
        ends = self.delivered + self.dead_lettered + self.quarantined + self.in_flight
        once = self.redelivered == 0 or not self.exactly_once
        return self.lost == 0 and self.double == 0 and self.phantom == 0 and ends == self.routed and once


@dataclass(frozen=True)
class Accounting:
    destinations: list[DestinationAccount]
    dropped: int
    unexpected: dict[str, int] = field(default_factory=dict)
    """Answers other than 202/429/503 and 401 ``stale_timestamp`` to a late resend, by kind."""
    stored_unacknowledged: int = 0
    """Keys never answered 202 that still reached Kafka (a 503 whose write landed later): allowed."""

    @property
    def passed(self) -> bool:
        return self.dropped == 0 and not self.unexpected and all(d.passed for d in self.destinations)

    def as_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "dropped_connections": self.dropped,
            "unexpected_statuses": self.unexpected,
            "stored_unacknowledged": self.stored_unacknowledged,
            "destinations": {d.destination: {**asdict(d), "passed": d.passed} for d in self.destinations},
        }


def account(
    observed: Observed,
    routed: Callable[[str, str], list[str]],
    *,
    exactly_once: frozenset[str] = frozenset({"events"}),
    statuses: Mapping[str, int] | None = None,
    rejected: Mapping[str, int] | None = None,
    by_kind: Mapping[str, Mapping[str, int]] | None = None,
    dropped: int = 0,
) -> Accounting:
    """Classify every accepted key at every destination it is routed to, and count each class."""
    per_dest: dict[str, list[str]] = {}
    for key, event_type in observed.accepted.items():
        for name in routed(key.split(":", 1)[0], event_type):
            per_dest.setdefault(name, []).append(key)
    accepted = set(observed.accepted)
    stored = set().union(*(set(c) for c in observed.delivered.values())) if observed.delivered else set()
    rows = []
    for name in sorted(set(per_dest) | set(observed.delivered) | set(observed.dead)):
        keys = per_dest.get(name, [])
        delivered = observed.delivered.get(name, Counter())
        dead = observed.dead.get(name, frozenset())
        pending = observed.pending.get(name, frozenset())
        counts: Counter[str] = Counter()
        for key in keys:
            ends = [key in delivered, key in dead, key in observed.quarantined]
            if sum(ends) > 1:
                counts["double"] += 1
            elif ends[0]:
                counts["delivered"] += 1
            elif ends[1]:
                counts["dead"] += 1
            elif ends[2]:
                counts["quarantined"] += 1
            elif key in pending:
                counts["in_flight"] += 1
            else:
                counts["lost"] += 1
        rows.append(
            DestinationAccount(
                destination=name,
                routed=len(keys),
                delivered=counts["delivered"],
                dead_lettered=counts["dead"],
                quarantined=counts["quarantined"],
                in_flight=counts["in_flight"],
                lost=counts["lost"],
                double=counts["double"],
                phantom=sum(1 for key in set(delivered) | dead if key not in observed.sent),
                redelivered=sum(n - 1 for key, n in delivered.items() if n > 1 and key in accepted),
                exactly_once=name in exactly_once,
            )
        )
    unexpected = _unexpected(statuses or {}, rejected or {}, by_kind or {})
    unacknowledged = len((stored - accepted) & observed.sent)
    return Accounting(rows, dropped, unexpected, unacknowledged)


def _unexpected(
    statuses: Mapping[str, int], rejected: Mapping[str, int], by_kind: Mapping[str, Mapping[str, int]]
) -> dict[str, int]:
    """Answers the flood must not get: other statuses, 401s for any reason but a stale timestamp,
    a 401 to a fresh send, or a 202 to a resend hours late (the edge's freshness check failed)."""
    found = {status: n for status, n in statuses.items() if status not in ALLOWED_STATUSES and n}
    found |= {r: n for r, n in rejected.items() if r.startswith("401 ") and r != "401 stale_timestamp" and n}
    found |= {f"401 to {kind}": c["401"] for kind, c in by_kind.items() if kind != "stale" and c.get("401")}
    if stale_accepted := by_kind.get("stale", {}).get("202", 0):
        found["202 to stale"] = stale_accepted
    return found
