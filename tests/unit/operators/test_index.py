"""The DLQ index without a broker: joins marks (latest wins, tombstones clear), selects, counts, finds."""

from __future__ import annotations

import pytest

from services.operators.dlq_index import AmbiguousId, DlqIndex
from services.operators.filters import DlqFilter
from tests.unit.operators.deadletters import FakeRecord, dead_letter, dlq_records, mark_record


def test_latest_mark_wins_and_a_tombstone_clears() -> None:
    a, b, c = (dead_letter("stripe", i) for i in range(3))
    marks = [
        mark_record(0, a.id, "discarded"),
        mark_record(1, a.id, "replayed"),  # later offset: this one counts
        mark_record(2, b.id, "discarded"),
        mark_record(3, b.id, None),  # tombstone: b is dead again
        mark_record(4, "no-such-dead-letter", "replayed"),
    ]
    index = DlqIndex.build(dlq_records([a, b, c]), reversed(marks))  # read order must not matter
    assert {e.id: e.state for e in index.entries.values()} == {a.id: "replayed", b.id: "dead", c.id: "dead"}


def test_unreadable_records_are_kept_aside_not_fatal() -> None:
    good = dead_letter("stripe", 1)
    records = [*dlq_records([good]), FakeRecord(1, 7, b"k", b"not json"), FakeRecord(1, 8, None, None)]
    index = DlqIndex.build(records, [])
    assert list(index.entries) == [good.id]
    assert index.unreadable == [(1, 7), (1, 8)]


def test_select_is_newest_first_limited_and_hides_discarded_by_default() -> None:
    dead = [dead_letter("stripe", i, hours=i) for i in range(5)]
    index = DlqIndex.build(dlq_records(dead), [mark_record(0, dead[4].id, "discarded")])
    assert [e.id for e in index.select(DlqFilter())] == [d.id for d in reversed(dead[:4])]
    assert [e.id for e in index.select(DlqFilter(limit=2))] == [dead[3].id, dead[2].id]
    assert [e.id for e in index.select(DlqFilter(state="discarded"))] == [dead[4].id]
    assert len(index.select(DlqFilter(state="all"))) == 5


def test_counts_by_error_class_ignore_limit_and_follow_filters() -> None:
    dead = [
        dead_letter("stripe", 0, error_class="http_500"),
        dead_letter("stripe", 1, error_class="http_500"),
        dead_letter("stripe", 2, error_class="timeout"),
        dead_letter("github", 3, error_class="http_400"),
        dead_letter("github", 4, error_class="http_500"),
    ]
    index = DlqIndex.build(dlq_records(dead), [mark_record(0, dead[4].id, "discarded")])
    assert index.counts() == [("http_500", 2), ("http_400", 1), ("timeout", 1)]
    assert index.counts(DlqFilter(provider="stripe", limit=1)) == [("http_500", 2), ("timeout", 1)]
    assert index.counts(DlqFilter(state="all")) == [("http_500", 3), ("http_400", 1), ("timeout", 1)]


def test_find_by_id_or_unique_prefix() -> None:
    dead = [dead_letter("stripe", i) for i in range(20)]
    index = DlqIndex.build(dlq_records(dead), [])
    target = dead[7]
    assert index.find(target.id) is index.entries[target.id]
    unique = next(n for n in range(1, 37) if sum(d.id.startswith(target.id[:n]) for d in dead) == 1)
    assert index.find(target.id[:unique]) is index.entries[target.id]
    assert index.find("zzzz") is None
    assert index.find("") is None
    shared = next((d.id[:1] for d in dead if sum(o.id.startswith(d.id[:1]) for o in dead) > 1), None)
    assert shared is not None  # 20 uuids over 16 first characters always share one
    with pytest.raises(AmbiguousId):
        index.find(shared)


def test_related_links_dead_letters_of_the_same_envelope() -> None:
    first = dead_letter("stripe", 1, destination="sink", attempts=1)
    again = first.model_copy(update={"id": "second", "destination": "other"})
    unrelated = dead_letter("stripe", 2)
    index = DlqIndex.build(dlq_records([first, again, unrelated]), [])
    assert [e.id for e in index.related(index.entries[first.id])] == ["second"]
