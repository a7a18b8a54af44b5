"""The flood's script: phases of traffic, the provider and event-type mix, and the destinations.

A scenario is plain data so the load generator (its own process) gets it as JSON and the unit tests
can check the schedule without anything running. Only a small share of event types is routed to the
HTTP destinations: the rate-limited one takes 100 requests a minute, so routing the whole flood there
would only measure how long a queue of a hundred thousand takes to drain.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from typing import Any

PROVIDERS = ("stripe", "github", "shopify", "standard")
SECRETS = {
    "stripe": "whsec_flood_stripe_secret",
    "github": "flood-github-secret",
    "shopify": "flood-shopify-secret",
    "standard": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}
STALE_KINDS = ("stripe", "standard")
"""Providers whose signature covers a timestamp, so an hours-late resend is refused as stale."""


@dataclass(frozen=True)
class Phase:
    """Send at ``rate`` a second for ``seconds``, or until ``max_count`` requests, whichever is first."""

    name: str
    rate: float
    seconds: float
    max_count: int

    @property
    def planned(self) -> int:
        return min(self.max_count, math.ceil(self.rate * self.seconds))

    def send_offset(self, index: int) -> float:
        """Seconds after the phase starts at which request ``index`` is due (open-loop pacing)."""
        return index / self.rate


@dataclass(frozen=True)
class SimulatedDestination:
    """One HTTP destination the simulator plays: its behaviour and the event types routed to it."""

    name: str
    behaviour: str
    """``limited`` (429 over ``per_minute``), ``flaky`` (``fail_ratio`` 500s) or ``slow`` (``delay``)."""
    routes: dict[str, list[str]]
    """provider → event-type patterns sent here."""
    per_minute: int = 100
    fail_ratio: float = 0.4
    delay_seconds: float = 2.0
    concurrency: int = 16
    max_attempts: int = 3


@dataclass(frozen=True)
class Scenario:
    phases: tuple[Phase, ...]
    event_types: dict[str, dict[str, float]]
    """provider → event type → weight."""
    destinations: tuple[SimulatedDestination, ...]
    duplicate_ratio: float = 0.2
    stale_share: float = 0.25
    """Of the duplicates, the share resent hours late (stripe and standard only)."""
    stale_age_seconds: int = 3 * 3600
    connections: int = 64
    drain_seconds: float = 30.0
    retry_tiers: dict[str, float] = field(
        default_factory=lambda: {"1s": 1.0, "5s": 5.0, "20s": 20.0, "60s": 60.0}
    )
    seed: int = 7

    @property
    def planned(self) -> int:
        return sum(phase.planned for phase in self.phases)

    @property
    def send_seconds(self) -> float:
        return sum(phase.seconds for phase in self.phases)

    def routed(self, provider: str, event_type: str) -> list[str]:
        """Destination names an event goes to: the Kafka ``events`` topic, plus matching simulated ones."""
        names = ["events"]
        for dest in self.destinations:
            patterns = dest.routes.get(provider, [])
            if any(fnmatchcase(event_type, pattern) for pattern in patterns):
                names.append(dest.name)
        return names

    def as_json(self) -> dict[str, Any]:
        """Plain JSON types (lists, not tuples), as the report file and the load generator read it."""
        data: dict[str, Any] = json.loads(json.dumps(asdict(self)))
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scenario:
        return cls(
            phases=tuple(Phase(**p) for p in data["phases"]),
            event_types=data["event_types"],
            destinations=tuple(SimulatedDestination(**d) for d in data["destinations"]),
            **{k: v for k, v in data.items() if k not in ("phases", "event_types", "destinations")},
        )


DEFAULT_EVENT_TYPES = {
    "stripe": {"payment_intent.succeeded": 0.85, "invoice.payment_failed": 0.15},
    "github": {"issues": 0.9, "release": 0.1},
    "shopify": {"orders/create": 0.93, "refunds/create": 0.07},
    "standard": {"invoice.paid": 1.0},
}

DEFAULT_DESTINATIONS = (
    SimulatedDestination("limited", "limited", {"shopify": ["refunds/*"]}, per_minute=100),
    SimulatedDestination("flaky", "flaky", {"stripe": ["invoice.*"]}, fail_ratio=0.4, concurrency=32),
    SimulatedDestination("slow", "slow", {"github": ["release.*"]}, delay_seconds=2.0, concurrency=64),
)


def default_scenario(
    *,
    scale: float = 1.0,
    duration: float | None = None,
    rate: float | None = None,
    drain: float = 30.0,
    connections: int = 64,
) -> Scenario:
    """Normal 50/s for 10 s, then a 100x flood (5,000/s target) for 20 s capped at 30,000 requests.

    ``scale`` multiplies rates and caps (0.1 is a small test run); ``duration`` is the total send time
    (split 1:2 between normal and flood); ``rate`` is the normal rate (the flood is 100 times it).
    """
    if scale <= 0:
        raise ValueError("scale must be positive")
    normal_rate = (rate if rate is not None else 50.0) * scale
    total = duration if duration is not None else 30.0
    normal_seconds, flood_seconds = total / 3, total * 2 / 3
    phases = (
        Phase("normal", normal_rate, normal_seconds, max(1, math.ceil(normal_rate * normal_seconds))),
        Phase("flood", normal_rate * 100, flood_seconds, max(1, int(30_000 * scale))),
    )
    return Scenario(
        phases=phases,
        event_types=DEFAULT_EVENT_TYPES,
        destinations=DEFAULT_DESTINATIONS,
        connections=connections,
        drain_seconds=drain,
    )
