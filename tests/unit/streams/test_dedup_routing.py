"""Which partition deduplicates a record, and on what identity: no broker (the Kafka tests are in
tests/integration/streams/test_dedup_partitions.py and test_replayed_bodies.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import get_args

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.deadletter import QuarantineRecord
from schemas.headers import FORWARDED_FROM_HEADER
from services.config import ConfigError, DedupMode, TelemetrySettings, load_settings
from services.kafka.partitioner import default_partition
from services.telemetry import export_counters, prometheus_text, setup_telemetry
from streams.dedup import DedupHandler
from streams.dedup_store import Entry, Origin, dedup_identity
from streams.metrics import Metrics
from tests.support.pipeline import envelope
from tests.unit.streams.records import INBOUND, SIGNER, TOPICS, Clock, dedup_handler, record, signed

MODES: tuple[DedupMode, ...] = get_args(DedupMode)


def handler_with(state: Path, partitions: int, modes: dict[str, DedupMode]) -> tuple[DedupHandler, Metrics]:
    metrics = Metrics()
    handler = DedupHandler(
        bootstrap="unused:9092",
        topics=TOPICS,
        signer=SIGNER,
        providers=modes,
        window_seconds=3600,
        expiry_interval_seconds=10,
        state_dir=state,
        metrics=metrics,
        clock=Clock(),
        inbound_partitions=partitions,
    )
    for partition in range(partitions):
        handler.stores[partition] = handler._open(partition)
    return handler, metrics


def inbound(partition: int) -> TopicPartition:
    return TopicPartition(TOPICS.inbound, partition)


event_ids = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mode=st.sampled_from(MODES),
    event_id=event_ids,
    event_type=st.sampled_from(["push", "orders/create", "orders/paid"]),
    body=st.binary(max_size=64),
    partitions=st.integers(1, 12),
    arrival=st.integers(0, 11),
)
async def test_a_record_is_deduplicated_only_by_the_partition_its_identity_maps_to(
    mode: DedupMode, event_id: str, event_type: str, body: bytes, partitions: int, arrival: int
) -> None:
    arrival %= partitions
    item = envelope("github", event_id, event_type).model_copy(update={"body": body})
    key = item.key.encode()
    identity = dedup_identity(mode, key, "github", body)
    owner = default_partition(identity, partitions)
    assert 0 <= owner < partitions
    assert (identity == key) == (mode == "event_id")
    with tempfile.TemporaryDirectory() as state:
        handler, metrics = handler_with(Path(state), partitions, {"github": mode})
        first = signed(item, offset=5, tp=inbound(arrival))
        outcome = await handler.handle({inbound(arrival): [first]})
        if arrival != owner:
            # forwarded unchanged, with an explicit partition, and nothing else
            (forwarded,) = outcome.records
            assert (forwarded.topic, forwarded.partition, forwarded.key, forwarded.value) == (
                TOPICS.inbound,
                owner,
                key,
                first.value,
            )
            assert forwarded.headers == (*first.headers, (FORWARDED_FROM_HEADER, b"%d" % arrival))
            assert metrics["dedup.forwarded"] == 1 and metrics["dedup.new"] == 0
            again = record(
                forwarded.value, key=forwarded.key, headers=list(forwarded.headers), tp=inbound(owner)
            )
            outcome = await handler.handle({inbound(owner): [again]})
        # at its owner it is deduplicated, never forwarded again
        ready, changelog = outcome.records
        assert ready.topic == TOPICS.ready("github") and ready.key == key
        assert (changelog.topic, changelog.key, changelog.partition) == (
            TOPICS.dedup_changelog,
            identity,
            owner,
        )
        assert metrics["dedup.new"] == 1 and metrics["dedup.forwarded"] == (arrival != owner)
        for store in handler.stores.values():
            store.close()


@given(
    ids=st.lists(event_ids, min_size=2, max_size=5, unique=True),
    body=st.binary(max_size=64),
    partitions=st.integers(1, 8),
)
def test_a_body_identity_ignores_the_unsigned_event_id_and_an_event_id_identity_is_the_key(
    ids: list[str], body: bytes, partitions: int
) -> None:
    digests = {dedup_identity("body", f"github:{i}".encode(), "github", body) for i in ids}
    assert len(digests) == 1
    (digest,) = digests
    assert digest.startswith(b"#")  # never a record key: those start with a provider name
    assert dedup_identity("body", b"shopify:x", "shopify", body) != digest
    assert dedup_identity("body_and_type", b"github:y", "github", body) == digest  # same key, other rule
    assert dedup_identity("event_id", b"github:x", "github", body) == b"github:x"


def test_entries_written_before_origins_existed_still_decode() -> None:
    assert Entry.decode(b"1700000000000:42") == Entry(1700000000000, 42)
    entry = Entry(1700000000000, 42, (Origin(b"github:a:b", "push", 42), Origin(b'x:"\n', "o/p", 50)))
    assert Entry.decode(entry.encode()) == entry


async def test_captured_body_under_fresh_ids_is_a_replay_and_the_same_id_a_resend(tmp_path: Path) -> None:
    handler, metrics = handler_with(tmp_path, 1, {"github": "body", "stripe": "event_id"})
    body = b'{"action":"opened","number":1}'
    posts = [envelope("github", d, "issues.opened").model_copy(update={"body": body}) for d in "abcd"]
    records = [signed(item, offset=i) for i, item in enumerate(posts)]
    records.append(signed(posts[0], offset=10))  # GitHub's own redelivery: same delivery id
    other = envelope("github", "e", "issues.opened").model_copy(update={"body": b'{"number":2}'})
    records.append(signed(other, offset=11))
    outcome = await handler.handle({inbound(0): records})
    assert [out.key for out in outcome.records if out.topic == TOPICS.ready("github")] == [
        b"github:a",
        b"github:e",
    ]
    assert (metrics["dedup.new"], metrics["dedup.replayed_body"], metrics["dedup.duplicate"]) == (2, 3, 1)


async def test_one_body_under_two_shopify_topics_is_two_events_but_a_topic_change_is_no_new_event(
    tmp_path: Path,
) -> None:
    handler, metrics = handler_with(tmp_path, 1, {"shopify": "body_and_type"})
    order = b'{"id":820982911946154508,"financial_status":"paid"}'

    def post(webhook_id: str, topic: str, offset: int) -> ConsumerRecord[bytes, bytes]:
        return signed(
            envelope("shopify", webhook_id, topic).model_copy(update={"body": order}), offset=offset
        )

    records = [
        post("w1", "orders/create", 0),
        post("w2", "orders/paid", 1),  # Shopify's own: the order was paid at checkout
        post("w3", "orders/paid", 2),  # the orders/paid body re-posted under a fresh id: a replay
        post("w1", "orders/cancelled", 3),  # a known webhook id with its topic changed: no new event
        post("w2", "orders/paid", 4),  # Shopify's retry
    ]
    outcome = await handler.handle({inbound(0): records})
    ready = [out for out in outcome.records if out.topic == TOPICS.ready("shopify")]
    assert [out.key for out in ready] == [b"shopify:w1", b"shopify:w2"]
    assert (metrics["dedup.new"], metrics["dedup.replayed_body"], metrics["dedup.duplicate"]) == (2, 1, 2)
    changelog = [out for out in outcome.records if out.topic == TOPICS.dedup_changelog]
    assert [len(Entry.decode(out.value or b"").origins) for out in changelog] == [1, 2]


async def test_a_re_read_after_an_abort_delivers_every_origin_again(tmp_path: Path) -> None:
    """kill -9 after RocksDB took the entries but before the transaction committed: nothing is lost."""
    handler, metrics = handler_with(tmp_path, 1, {"shopify": "body_and_type"})
    order = b'{"id":1}'
    records = [
        signed(envelope("shopify", w, t).model_copy(update={"body": order}), offset=i)
        for i, (w, t) in enumerate([("w1", "orders/create"), ("w2", "orders/paid"), ("w3", "orders/paid")])
    ]
    first = await handler.handle({inbound(0): records})
    handler.on_aborted()
    again = await handler.handle({inbound(0): records})
    assert [out.key for out in again.records] == [out.key for out in first.records]
    assert metrics["dedup.new"] == 4 and metrics["dedup.replayed_body"] == 2


async def test_a_forwarded_record_its_partition_does_not_own_is_quarantined_not_bounced(
    tmp_path: Path,
) -> None:
    handler, metrics = handler_with(tmp_path, 4, {"stripe": "event_id"})
    item = next(
        e
        for e in (envelope("stripe", f"evt_{i}") for i in range(100))
        if default_partition(e.key.encode(), 4) != 1
    )
    key, value, headers = signed(item).key, signed(item).value, list(signed(item).headers)
    misrouted = record(value, key=key, headers=[*headers, (FORWARDED_FROM_HEADER, b"0")], tp=inbound(1))
    (out,) = (await handler.handle({inbound(1): [misrouted]})).records
    assert out.topic == TOPICS.quarantine
    assert QuarantineRecord.model_validate_json(out.value or b"").reason == "misrouted"
    assert metrics["dedup.quarantined.misrouted"] == 1 and metrics["dedup.forwarded"] == 0


@pytest.mark.parametrize("key", [None, b"\xff\xfe", b"stripe:other"])
async def test_a_record_without_its_envelope_key_is_quarantined_where_it_lands(
    tmp_path: Path, key: bytes | None
) -> None:
    handler, metrics = handler_with(tmp_path, 4, {"stripe": "event_id"})
    good = signed(envelope("stripe", "evt_1"))
    for partition in range(4):
        bad = record(good.value, key=key, headers=list(good.headers), tp=inbound(partition))
        (out,) = (await handler.handle({inbound(partition): [bad]})).records
        assert out.topic == TOPICS.quarantine
    assert metrics["dedup.quarantined.key_mismatch"] == 4 and metrics["dedup.forwarded"] == 0


def test_dedup_defaults_by_kind_and_a_bad_value_names_the_field() -> None:
    settings = load_settings(
        None,
        providers={
            "github": {"secrets": ["s"]},
            "shopify": {"secrets": ["s"]},
            "shop-eu": {"kind": "shopify", "secrets": ["s"], "dedup": "body"},
            "stripe": {"secrets": ["s"]},
            "standard": {"secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]},
        },
    )
    assert {name: settings.dedup_mode(name) for name in settings.provider_names} == {
        "github": "body",
        "shop-eu": "body",
        "shopify": "body_and_type",
        "standard": "event_id",
        "stripe": "event_id",
    }
    with pytest.raises(ConfigError, match=r"providers\.github\.dedup"):
        load_settings(None, providers={"github": {"secrets": ["s"], "dedup": "payload"}})


def test_forwarded_and_replayed_bodies_are_on_metrics_beside_the_other_dedup_counters() -> None:
    telemetry = setup_telemetry(TelemetrySettings(), "dedup-routing-test")
    metrics = Metrics({"dedup.forwarded": 7, "dedup.replayed_body": 2, "dedup.duplicate": 1})
    export_counters(telemetry.meter, lambda: metrics)
    scraped = prometheus_text()[0].decode()
    assert "breakwater_pipeline_forwarded_total" in scraped
    assert "breakwater_pipeline_replayed_bodies_total" in scraped
    assert "dedup.forwarded=7" in metrics.line() and "dedup.replayed_body=2" in metrics.line()


async def test_a_batch_before_the_partition_count_is_known_waits_and_never_calls_kafka(
    tmp_path: Path,
) -> None:
    """The count is read in on_assigned (retried with backoff), never from handle: no KafkaError there."""
    dedup, metrics = dedup_handler(tmp_path, Clock())
    dedup._fixed_partitions = dedup._partitions = 0  # as after on_revoked, count read from the cluster
    dedup._bootstrap = "localhost:1"  # nothing listens: contacting Kafka here would raise
    outcome = await dedup.handle({INBOUND: [signed(envelope("stripe", "evt_1"), offset=4)]})
    dedup.stores[0].close()
    assert outcome.records == [] and outcome.stop_at == {INBOUND: 4} and INBOUND in outcome.resume_at
    assert metrics["dedup.new"] == 0
