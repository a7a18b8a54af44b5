"""The DLQ index, replay and discard on the real broker: exactly the right records, exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from schemas.envelope import WebhookEnvelope
from schemas.headers import DESTINATION_HEADER, REPLAY_OF_HEADER, REPLAYED_BY_HEADER
from services.operators.filters import DlqFilter, parse_time
from services.operators.marks import DlqMark
from services.operators.views import to_json
from tests.integration.operators.seed import Seeded, seed
from tests.unit.operators.deadletters import BASE, dead_letter


async def ids(seeded: Seeded, **filters: str) -> set[str]:
    listing = await seeded.ops.listing(DlqFilter.parse(filters))
    assert listing.truncated is False
    return {item.id for item in listing.items}


async def test_list_filters_select_exactly_the_right_records(seeded: Seeded) -> None:
    dead = seeded.dead
    at = seeded.hours
    assert await ids(seeded) == {d.id for d in dead} and len(dead) == 14
    assert await ids(seeded, provider="stripe") == {d.id for d in dead if d.envelope.provider == "stripe"}
    assert len(await ids(seeded, provider="stripe")) == 10
    assert await ids(seeded, error_class="http_500") == {
        d.id for d in dead if d.final_error.error_class == "http_500"
    }
    assert await ids(seeded, destination="events") == {d.id for d in dead if d.destination == "events"}
    assert await ids(seeded, event_type="push") == {d.id for d in dead if d.envelope.event_type == "push"}
    window = {
        d.id
        for d in dead
        if d.envelope.provider == "stripe"
        and d.final_error.error_class == "http_500"
        and BASE + timedelta(hours=1) <= d.dead_at <= BASE + timedelta(hours=3)
    }
    assert len(window) == 3
    assert await ids(seeded, provider="stripe", error_class="http_500", since=at(1), until=at(3)) == window
    newest = sorted(dead, key=lambda d: (d.dead_at, d.id), reverse=True)[:4]
    listing = await seeded.ops.listing(DlqFilter(limit=4))
    assert [item.id for item in listing.items] == [d.id for d in newest]
    counts = await seeded.ops.counts()
    assert counts == {"http_500": 9, "http_400": 3, "timeout": 2}


async def test_replay_by_criteria_publishes_those_once_and_marks_them(seeded: Seeded) -> None:
    ops, at = seeded.ops, seeded.hours
    criteria = DlqFilter(
        provider="stripe", error_class="http_500", since=parse_time(at(1)), until=parse_time(at(3))
    )
    chosen = await ops.select(criteria)
    expected = {e.id for e in chosen.entries}
    assert len(expected) == 3

    report = await ops.replay(chosen, by="alice")
    assert (set(report.done), report.skipped, report.failed) == (expected, [], [])

    ready = await seeded.read(ops.topics.ready("stripe"))
    assert len(ready.records) == 3
    by_id = {e.id: e for e in chosen.entries}
    for record in ready.records:
        headers = dict(record.headers)
        entry = by_id[headers[REPLAY_OF_HEADER].decode()]
        assert record.key == entry.dead.envelope.key.encode()
        assert headers[DESTINATION_HEADER] == b"sink" and headers[REPLAYED_BY_HEADER] == b"alice"
        sent = WebhookEnvelope.model_validate_json(record.value)
        assert sent.errors[:-1] == entry.dead.envelope.errors and sent.errors[-1].stage == "replay"
    assert {dict(r.headers)[REPLAY_OF_HEADER].decode() for r in ready.records} == expected
    assert (await seeded.read(ops.topics.ready("github"))).records == []

    marks = [DlqMark.model_validate_json(r.value) for r in (await seeded.read(ops.topics.dlq_state)).records]
    assert {m.replay_of for m in marks} == expected and {m.state for m in marks} == {"replayed"}
    listed = await ops.listing(DlqFilter(state="replayed"))
    assert {item.id for item in listed.items} == expected

    again = await ops.replay(await ops.select(criteria), by="bob")
    assert (again.done, set(again.skipped), again.failed) == ([], expected, [])
    one = await ops.replay(await ops.select(DlqFilter(ids=frozenset({next(iter(expected))}))), by="bob")
    assert (one.done, len(one.skipped)) == ([], 1)
    assert len((await seeded.read(ops.topics.ready("stripe"))).records) == 3


async def test_two_replayers_at_once_still_deliver_once(seeded: Seeded) -> None:
    ops = seeded.ops
    chosen = await ops.select(DlqFilter(provider="github"))
    assert len(chosen.entries) == 4
    first, second = await asyncio.gather(ops.replay(chosen, by="a"), ops.replay(chosen, by="b"))
    assert len(first.done) + len(second.done) == 4
    assert all("fenced" in reason for _, reason in first.failed + second.failed)
    assert len((await seeded.read(ops.topics.ready("github"))).records) == 4
    assert len((await ops.select(DlqFilter(provider="github", state="replayed"))).entries) == 4


async def test_discard_hides_from_the_default_list_and_publishes_nothing(seeded: Seeded) -> None:
    ops = seeded.ops
    chosen = await ops.select(DlqFilter(provider="stripe", error_class="http_400"))
    expected = {e.id for e in chosen.entries}
    assert len(expected) == 2

    dry = await ops.discard(chosen, by="carol", dry_run=True)
    assert set(dry.done) == expected
    assert len(await ids(seeded)) == 14  # a dry run changes nothing

    report = await ops.discard(chosen, by="carol", notes="customer deleted")
    assert set(report.done) == expected
    assert await ids(seeded) == {d.id for d in seeded.dead} - expected
    assert await ids(seeded, state="discarded") == expected
    detail = await ops.show(next(iter(expected)))
    assert detail is not None and detail.mark is not None and detail.mark.notes == "customer deleted"
    assert (await seeded.read(ops.topics.ready("stripe"))).records == []
    again = await ops.discard(await ops.select(DlqFilter(ids=frozenset(expected))), by="carol")
    assert (again.done, set(again.skipped)) == ([], expected)


async def test_show_returns_the_whole_record(seeded: Seeded) -> None:
    target = seeded.dead[2]
    detail = await seeded.ops.show(target.id[:13])
    assert detail is not None and detail.id == target.id
    shown = to_json(detail)
    assert shown["body"] == {"encoding": "json", "content": {"id": "evt_stripe_2", "type": "charge.failed"}}
    assert len(shown["history"]) == 3 and shown["final_error"]["error_class"] == "http_500"
    assert shown["key"] == target.envelope.key
    assert await seeded.ops.show("no-such-id") is None


async def test_a_provider_without_a_ready_topic_fails_alone(
    kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    world = await seed(kafka_bootstrap, unique("gone"), [dead_letter("retired", 1), dead_letter("stripe", 2)])
    report = await world.ops.replay(await world.ops.select(DlqFilter(error_class="http_500")), by="ops")
    assert report.done == [world.dead[1].id]
    assert [(i, "no topic" in reason) for i, reason in report.failed] == [(world.dead[0].id, True)]
    assert len((await world.read(world.ops.topics.ready("stripe"))).records) == 1
    assert (await world.ops.listing(DlqFilter(provider="retired"))).items[0].state == "dead"
