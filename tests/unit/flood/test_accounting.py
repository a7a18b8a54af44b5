"""The accounting arithmetic: every accepted key ends in exactly one place at each destination."""

from __future__ import annotations

from collections import Counter

from services.flood.accounting import Observed, account


def routed(provider: str, event_type: str) -> list[str]:
    return ["events", "hook"] if event_type == "to.hook" else ["events"]


def observed(**changes: object) -> Observed:
    base: dict[str, object] = {
        "accepted": {"s:1": "to.hook", "s:2": "to.hook", "s:3": "plain", "s:4": "to.hook"},
        "sent": frozenset({"s:1", "s:2", "s:3", "s:4", "s:5"}),
        "delivered": {
            "events": Counter({"s:1": 1, "s:2": 1, "s:3": 1, "s:4": 1}),
            "hook": Counter({"s:1": 1}),
        },
        "dead": {"hook": frozenset({"s:2"})},
        "quarantined": frozenset(),
        "pending": {"hook": frozenset({"s:4"})},
    }
    base.update(changes)
    return Observed(**base)  # type: ignore[arg-type]


def test_delivered_dead_and_in_flight_add_up_to_routed() -> None:
    result = account(observed(), routed, statuses={"202": 4, "401": 1})
    rows = {row.destination: row for row in result.destinations}
    hook = rows["hook"]
    assert (hook.routed, hook.delivered, hook.dead_lettered, hook.in_flight, hook.lost) == (3, 1, 1, 1, 0)
    assert rows["events"].routed == rows["events"].delivered == 4
    assert result.passed
    assert result.as_json()["destinations"]["hook"]["passed"] is True


def test_a_key_that_ended_nowhere_is_lost_and_fails_the_check() -> None:
    result = account(observed(pending={}), routed)
    hook = next(r for r in result.destinations if r.destination == "hook")
    assert hook.lost == 1 and not hook.passed and not result.passed


def test_delivered_and_dead_lettered_at_once_is_double() -> None:
    result = account(observed(dead={"hook": frozenset({"s:1", "s:2"})}), routed)
    hook = next(r for r in result.destinations if r.destination == "hook")
    assert hook.double == 1 and not result.passed


def test_a_delivery_never_sent_is_a_phantom() -> None:
    delivered = {
        "events": Counter({"s:1": 1, "s:2": 1, "s:3": 1, "s:4": 1, "x:9": 1}),
        "hook": Counter({"s:1": 1}),
    }
    result = account(observed(delivered=delivered), routed)
    assert next(r for r in result.destinations if r.destination == "events").phantom == 1
    assert not result.passed


def test_kafka_redelivery_fails_but_http_redelivery_is_allowed() -> None:
    twice_http = {"events": Counter({"s:1": 1, "s:2": 1, "s:3": 1, "s:4": 1}), "hook": Counter({"s:1": 2})}
    assert account(observed(delivered=twice_http), routed).passed
    twice_kafka = {"events": Counter({"s:1": 2, "s:2": 1, "s:3": 1, "s:4": 1}), "hook": Counter({"s:1": 1})}
    assert not account(observed(delivered=twice_kafka), routed).passed


def test_dropped_connections_and_unexpected_statuses_fail_the_check() -> None:
    assert not account(observed(), routed, dropped=1).passed
    result = account(observed(), routed, statuses={"202": 4, "500": 2})
    assert result.unexpected == {"500": 2} and not result.passed


def test_a_503_whose_write_landed_later_is_stored_unacknowledged_not_phantom() -> None:
    delivered = {
        "events": Counter({"s:1": 1, "s:2": 1, "s:3": 1, "s:4": 1, "s:5": 1}),
        "hook": Counter({"s:1": 1}),
    }
    result = account(observed(delivered=delivered), routed)
    assert result.stored_unacknowledged == 1 and result.passed


def test_a_refusal_other_than_stale_or_a_stale_acceptance_fails_the_check() -> None:
    bad_signature = account(observed(), routed, statuses={"401": 1}, rejected={"401 bad_signature": 1})
    assert bad_signature.unexpected == {"401 bad_signature": 1} and not bad_signature.passed
    fresh_refused = account(observed(), routed, by_kind={"new": {"202": 3, "401": 1}})
    assert fresh_refused.unexpected == {"401 to new": 1}
    stale_taken = account(observed(), routed, by_kind={"stale": {"202": 2, "401": 5}})
    assert stale_taken.unexpected == {"202 to stale": 2} and not stale_taken.passed
    fine = account(observed(), routed, rejected={"401 stale_timestamp": 5}, by_kind={"stale": {"401": 5}})
    assert fine.passed
