"""The dedup stage without a broker: signature, poison records, the window, expiry and crash re-reads."""

from __future__ import annotations

import json
from pathlib import Path

from aiokafka import TopicPartition

from schemas.deadletter import QuarantineRecord
from tests.support.pipeline import envelope
from tests.support.waiting import until
from tests.unit.streams.records import INBOUND, SIGNER, TOPICS, Clock, dedup_handler, record, signed


async def test_new_event_goes_to_its_provider_ready_topic_with_a_changelog_entry(tmp_path: Path) -> None:
    handler, metrics = dedup_handler(tmp_path, Clock())
    item = envelope("stripe", "evt_1")
    outcome = await handler.handle({INBOUND: [signed(item)]})
    ready, changelog = outcome.records
    assert (ready.topic, ready.key) == (TOPICS.ready("stripe"), b"stripe:evt_1")
    assert (changelog.topic, changelog.key, changelog.partition) == (
        TOPICS.dedup_changelog,
        b"stripe:evt_1",
        0,
    )
    assert metrics["dedup.new"] == 1


async def test_duplicates_within_the_window_are_counted_and_dropped(tmp_path: Path) -> None:
    handler, metrics = dedup_handler(tmp_path, Clock(), window_seconds=60)
    copies = [
        signed(envelope("stripe", "evt_1"), offset=i, timestamp=1_000_000 + i * 10_000) for i in range(3)
    ]
    outcome = await handler.handle({INBOUND: copies})
    assert [out.topic for out in outcome.records] == [TOPICS.ready("stripe"), TOPICS.dedup_changelog]
    assert metrics["dedup.duplicate"] == 2


async def test_a_copy_after_the_window_is_new_again(tmp_path: Path) -> None:
    handler, _ = dedup_handler(tmp_path, Clock(), window_seconds=60)
    first = signed(envelope("github", "d1"), offset=0, timestamp=1_000_000)
    late = signed(envelope("github", "d1"), offset=1, timestamp=1_000_000 + 60_000)
    outcome = await handler.handle({INBOUND: [first, late]})
    assert [out.topic for out in outcome.records].count(TOPICS.ready("github")) == 2


async def test_re_reading_the_offset_that_recorded_a_key_is_not_a_duplicate(tmp_path: Path) -> None:
    """After kill -9 the store may hold a key whose output was aborted; the same offset comes again."""
    handler, metrics = dedup_handler(tmp_path, Clock())
    item = signed(envelope("stripe", "evt_1"), offset=41)
    await handler.handle({INBOUND: [item]})
    handler.on_aborted()
    again = await handler.handle({INBOUND: [item]})
    assert [out.topic for out in again.records] == [TOPICS.ready("stripe"), TOPICS.dedup_changelog]
    assert metrics["dedup.duplicate"] == 0


async def test_poison_records_are_quarantined_with_their_reason(tmp_path: Path) -> None:
    handler, metrics = dedup_handler(tmp_path, Clock())
    good = envelope("stripe", "evt_1")

    def signed_raw(
        value: bytes, key: bytes = b"stripe:evt_1"
    ) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        return key, value, SIGNER.sign(value)

    unknown = envelope("acme", "e9")
    cases = {
        "bad_signature": (
            b"stripe:evt_1",
            good.model_dump_json().encode(),
            [("bw-key-id", b"k1"), ("bw-signature", b"0")],
        ),
        "undecodable": signed_raw(b"\xff{not json"),
        "invalid_envelope": signed_raw(json.dumps({"provider": "stripe"}).encode()),
        "key_mismatch": signed_raw(good.model_dump_json().encode(), key=b"stripe:other"),
        "unknown_provider": signed_raw(unknown.model_dump_json().encode(), key=b"acme:e9"),
    }
    records = [
        record(value, key=key, headers=headers, offset=i)
        for i, (key, value, headers) in enumerate(cases.values())
    ]
    records.append(record(None, key=None, offset=99))  # no value and no headers at all
    outcome = await handler.handle({INBOUND: records})
    quarantined = [QuarantineRecord.model_validate_json(out.value or b"") for out in outcome.records]
    assert all(out.topic == TOPICS.quarantine for out in outcome.records)
    assert [q.reason for q in quarantined] == [*cases, "bad_signature"]
    assert quarantined[1].value == b"\xff{not json" and quarantined[1].source_offset == 1
    assert metrics["dedup.quarantined.bad_signature"] == 2 and metrics["dedup.new"] == 0


async def test_expired_keys_leave_rocksdb_and_are_tombstoned(tmp_path: Path) -> None:
    clock = Clock(now=1_000.0)
    handler, metrics = dedup_handler(tmp_path, clock, window_seconds=60)
    old = signed(envelope("stripe", "old"), offset=0, timestamp=1_000_000)
    fresh = signed(envelope("stripe", "fresh"), offset=1, timestamp=1_050_000)
    await handler.handle({INBOUND: [old, fresh]})
    assert handler.maintain() == []  # not yet time to look
    clock.now = 1_061.0  # "old" (seen at 1,000 s) is past the 60 s window; "fresh" (1,050 s) is not
    tombstones = handler.maintain()
    assert [(t.topic, t.key, t.value, t.partition) for t in tombstones] == [
        (TOPICS.dedup_changelog, b"stripe:old", None, 0)
    ]
    store = handler.stores[0]
    assert store.get(b"stripe:old") is None and store.get(b"stripe:fresh") is not None
    assert store.count() == 1 and metrics["dedup.expired"] == 1
    clock.now = 2_000.0
    assert [t.key for t in handler.maintain()] == [b"stripe:fresh"]
    assert store.count() == 0


async def test_committed_changelog_offsets_become_the_restore_checkpoint(tmp_path: Path) -> None:
    handler, _ = dedup_handler(tmp_path, Clock())
    await handler.handle({INBOUND: [signed(envelope("stripe", "evt_1"))]})
    handler.on_committed(
        {TopicPartition(TOPICS.dedup_changelog, 0): 17, TopicPartition(TOPICS.ready("stripe"), 0): 99}
    )
    assert handler.stores[0].checkpoint == 17
    handler.on_committed({TopicPartition(TOPICS.dedup_changelog, 0): 12})
    assert handler.stores[0].checkpoint == 17  # never backwards


async def test_ready_records_keep_the_trace_context_but_not_the_edge_signature(tmp_path: Path) -> None:
    handler, _ = dedup_handler(tmp_path, Clock())
    traced = envelope("stripe", "evt_t").model_copy(
        update={"trace_parent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    )
    outcome = await handler.handle(
        {INBOUND: [signed(traced, offset=0), signed(envelope("stripe", "evt_u"), offset=1)]}
    )
    ready = [out for out in outcome.records if out.topic == TOPICS.ready("stripe")]
    assert [dict(out.headers) for out in ready] == [{"traceparent": traced.trace_parent.encode()}, {}]  # type: ignore[union-attr]


async def test_memtables_are_flushed_every_expiry_interval_not_only_when_full(tmp_path: Path) -> None:
    clock = Clock(now=1_000.0)
    handler, _ = dedup_handler(tmp_path, clock, window_seconds=3_600)
    await handler.handle({INBOUND: [signed(envelope("stripe", f"e{i}"), offset=i) for i in range(300)]})
    store = handler.stores[0]
    held = store.memtable_bytes()
    assert held > 64 << 10  # far below a full memtable: RocksDB alone would keep it in memory
    handler.maintain()
    assert store.memtable_bytes() == held  # not yet time
    clock.now += 61
    handler.maintain()
    flushed = f"RocksDB's background flush of {held} memtable bytes"
    await until(lambda: store.memtable_bytes() < held // 10, timeout=10, what=flushed)
    assert store.get(b"stripe:e0") is not None and store.get(b"stripe:e299") is not None
