"""No record stops a stage: whatever its key, value and headers, each one comes out as data, once.

Generated records (null and non-UTF-8 header values, binary keys, values that are or are not JSON)
go through the dedup, dispatch and retry handlers; each record must yield its outputs or exactly one
quarantine record or dead letter, and the handler must never raise.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.errors import MessageSizeTooLargeError, ProducerFenced
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.deadletter import DeadLetter, QuarantineRecord
from schemas.headers import DESTINATION_HEADER
from schemas.limits import RECORD_MAX_BYTES
from streams.batching import Refusals, _Pending
from streams.eos_types import Out
from streams.metrics import Metrics
from streams.poison import OUTPUT_MAX_BYTES, is_infrastructure
from streams.retry import RetryHandler
from tests.support.pipeline import envelope
from tests.unit.streams.records import INBOUND, TOPICS, Clock, dedup_handler, record, signed
from tests.unit.streams.test_dispatch import READY_TP, FakeDeliverer, handler

header_values = st.one_of(st.none(), st.binary(max_size=16), st.sampled_from([b"\xff\xfe", b"\xc3"]))
header_names = st.sampled_from(["bw-signature", "bw-key-id", DESTINATION_HEADER, "traceparent", "x"])
headers = st.lists(st.tuples(header_names, header_values), max_size=4)
values = st.one_of(st.none(), st.binary(max_size=64), st.just(b"{}"), st.just(b'{"provider": "stripe"}'))
keys = st.one_of(st.none(), st.binary(max_size=16))
poison = st.lists(st.tuples(keys, values, headers), min_size=1, max_size=8)
TOO_LARGE = MessageSizeTooLargeError()
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(poison)
async def test_dedup_quarantines_every_poison_record_and_never_raises(
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]],
) -> None:
    with tempfile.TemporaryDirectory() as state:
        dedup, metrics = dedup_handler(Path(state), Clock())
        batch = [
            record(value, key=key, headers=hs, offset=i)  # type: ignore[arg-type]  # None values on purpose
            for i, (key, value, hs) in enumerate(records)
        ]
        outcome = await dedup.handle({INBOUND: batch})
        dedup.stores[0].close()
    assert [out.topic for out in outcome.records] == [TOPICS.quarantine] * len(records)
    quarantined = [QuarantineRecord.model_validate_json(out.value or b"") for out in outcome.records]
    assert [(q.source_offset, q.value) for q in quarantined] == [(i, r[1]) for i, r in enumerate(records)]
    assert [out.origin for out in outcome.records] == [(INBOUND.topic, 0, i) for i in range(len(records))]
    assert sum(v for k, v in metrics.items() if k.startswith("dedup.quarantined.")) == len(records)


async def test_a_null_signature_header_is_quarantined_as_bad_signature(tmp_path: Path) -> None:
    """The record of issue #13: ``bw-signature`` without value, written with no signing key."""
    dedup, _ = dedup_handler(tmp_path, Clock())
    item = record(b'{"id": 1}', key=b"stripe:evt_1", headers=[("bw-signature", None)])  # type: ignore[list-item]
    outcome = await dedup.handle({INBOUND: [item]})
    (out,) = outcome.records
    quarantined = QuarantineRecord.model_validate_json(out.value or b"")
    assert quarantined.reason == "bad_signature"
    assert quarantined.headers == {"bw-signature": None}


async def test_a_partition_whose_store_is_not_open_is_given_back_not_a_key_error(tmp_path: Path) -> None:
    dedup, metrics = dedup_handler(tmp_path, Clock())
    other = TopicPartition(INBOUND.topic, 3)
    item = signed(envelope("stripe", "evt_1"), offset=7)
    outcome = await dedup.handle({other: [item], INBOUND: [signed(envelope("stripe", "evt_2"))]})
    assert outcome.stop_at == {other: 7} and other in outcome.resume_at
    assert metrics["dedup.new"] == 1


@FAST
@given(st.lists(st.tuples(keys, values, headers), min_size=1, max_size=6), st.data())
async def test_dispatch_accounts_for_every_record_and_never_raises(
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]], data: st.DataObject
) -> None:
    dispatch, _ = handler(FakeDeliverer())
    batch = []
    for i, (key, value, hs) in enumerate(records):
        if data.draw(st.booleans(), label="a real envelope"):
            value = envelope("stripe", f"evt_{i}", "payout.paid").model_dump_json().encode()
        batch.append(record(value, key=key, headers=hs, offset=i, tp=READY_TP))  # type: ignore[arg-type]
    outcome = await dispatch.handle({READY_TP: batch})
    by_origin: dict[int, list[Out]] = {}
    for out in outcome.records:
        assert out.origin is not None
        by_origin.setdefault(out.origin[2], []).append(out)
    assert sorted(by_origin) == list(range(len(records)))  # every record left a trace
    for outs in by_origin.values():
        kinds = {out.topic for out in outs}
        if TOPICS.quarantine in kinds or TOPICS.dlq in kinds:
            assert len(outs) == 1  # poison: exactly one record that says why
    for out in outcome.records:
        if out.topic == TOPICS.dlq:
            assert DeadLetter.model_validate_json(out.value or b"").reason in {"unprocessable", "permanent"}
        if out.topic == TOPICS.quarantine:
            assert QuarantineRecord.model_validate_json(out.value or b"").reason in {
                "undecodable",
                "invalid_envelope",
            }


async def test_a_null_or_undecodable_destination_header_is_dead_lettered_with_its_reason() -> None:
    dispatch, _ = handler(FakeDeliverer())
    value = envelope("stripe", "evt_1", "payout.paid").model_dump_json().encode()
    batch = [
        record(value, key=b"stripe:evt_1", headers=[(DESTINATION_HEADER, None)], tp=READY_TP),  # type: ignore[list-item]
        record(value, key=b"stripe:evt_1", headers=[(DESTINATION_HEADER, b"\xff")], offset=1, tp=READY_TP),
    ]
    outcome = await dispatch.handle({READY_TP: batch})
    letters = [DeadLetter.model_validate_json(out.value or b"") for out in outcome.records]
    assert [out.topic for out in outcome.records] == [TOPICS.dlq, TOPICS.dlq]
    assert [d.reason for d in letters] == ["unprocessable", "unprocessable"]
    assert [d.final_error.error_class for d in letters] == ["BadHeader", "BadHeader"]
    assert "no value" in letters[0].final_error.message and "not UTF-8" in letters[1].final_error.message


@FAST
@given(st.lists(st.tuples(keys, values, headers), min_size=1, max_size=6))
async def test_retry_quarantines_unreadable_records_and_never_raises(
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]],
) -> None:
    tp = TopicPartition(TOPICS.retry("a"), 0)
    retry = RetryHandler(
        tier="a", topics=TOPICS, metrics=Metrics(), delay_seconds=10, jitter=0.1, providers=["stripe"]
    )
    batch = [record(v, key=k, headers=h, offset=i, tp=tp) for i, (k, v, h) in enumerate(records)]  # type: ignore[arg-type]
    outcome = await retry.handle({tp: batch})
    assert [out.topic for out in outcome.records] == [TOPICS.quarantine] * len(records)
    assert {QuarantineRecord.model_validate_json(o.value or b"").reason for o in outcome.records} == {
        "invalid_record"
    }


def test_only_infrastructure_failures_are_infrastructure() -> None:
    assert is_infrastructure(OSError("disk")) and is_infrastructure(Exception("IO error: rocksdb"))
    assert not is_infrastructure(AttributeError("'NoneType' object has no attribute 'decode'"))
    assert not is_infrastructure(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"))


def _out(origin: int, size: int = 10) -> Out:
    return Out("t", b"k", b"v" * size, origin=("src", 0, origin))


def test_an_output_over_the_limit_is_replaced_by_a_bounded_record_before_sending() -> None:
    refusals = Refusals("q")
    big = _out(5, OUTPUT_MAX_BYTES + 1)
    replaced, alone = refusals.prepare(big)
    record = QuarantineRecord.model_validate_json(replaced.value or b"")
    assert (replaced.topic, alone, record.reason, record.value) == ("q", False, "too_large", None)
    assert (record.source_topic, record.source_offset, record.target_topic) == ("src", 5, "t")
    assert record.value_bytes == len(big.value or b"")
    assert record.value_sha256 == hashlib.sha256(big.value or b"").hexdigest()
    assert len(replaced.value or b"") < 4096 < RECORD_MAX_BYTES


def test_a_refused_output_replaces_only_itself_not_the_other_outputs_of_its_record() -> None:
    """A ready record the broker refuses must not take its changelog entry (same input) with it."""
    refusals = Refusals("q", limit=3)
    ready = Out("ready", b"k", b"v", origin=("src", 0, 7))
    changelog = Out("changelog", b"k", b"entry", origin=("src", 0, 7))
    for _ in range(3):
        refusals.refused(_Pending(TopicPartition("ready", 0), 1, None, [ready]), TOO_LARGE)  # type: ignore[arg-type]
    assert refusals.prepare(ready)[0].topic == "q"
    assert refusals.prepare(changelog) == (changelog, True)  # a suspect, sent alone, but kept whole


def test_refused_batches_make_suspects_and_three_refusals_alone_replace_the_record() -> None:
    refusals = Refusals("q", limit=3)
    guilty, innocent = _out(1), _out(2)
    refusals.refused(_Pending(TopicPartition("t", 0), 2, None, [guilty]), ProducerFenced())  # type: ignore[arg-type]
    assert not refusals  # not the record's fault: nothing to remember
    refusals.refused(_Pending(TopicPartition("t", 0), 2, None, [guilty, innocent]), TOO_LARGE)  # type: ignore[arg-type]
    assert refusals.prepare(guilty) == (guilty, True) and refusals.prepare(innocent) == (innocent, True)
    for _ in range(3):
        refusals.refused(_Pending(TopicPartition("t", 0), 1, None, [guilty]), TOO_LARGE)  # type: ignore[arg-type]
    replaced, alone = refusals.prepare(guilty)
    assert replaced.topic == "q" and not alone
    assert "refused 3 times" in QuarantineRecord.model_validate_json(replaced.value or b"").detail
    assert refusals.prepare(innocent) == (innocent, True)
    refusals.forget({("src", 0, 1), ("src", 0, 2)})
    assert not refusals
