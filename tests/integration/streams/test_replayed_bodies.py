"""Captured GitHub and Shopify requests re-posted with fresh ids are not new events (issue #13 B).

Their signature is an HMAC of the body only; the event id and type are headers anyone holding one
captured request can change. Through the real edge (so the envelopes are exactly what production
writes), a real broker and a worker: the body decides, and on the partition its digest maps to.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.events import EventRecord
from services.edge.verifiers.signers import sign_github, sign_shopify
from services.kafka.partitioner import default_partition
from streams.dedup_store import dedup_identity
from streams.metrics import Metrics
from tests.support.edge import SECRETS, SIGNING_KEY, running_edge
from tests.support.pipeline import (
    CommittedReader,
    create_topics,
    pipeline_config,
    running_worker,
    settings_of,
)
from tests.support.waiting import until

pytestmark = pytest.mark.kafka
PARTITIONS = 4


@pytest.fixture
def config(kafka_bootstrap: str, unique: Callable[[str], str], tmp_path: Path) -> dict[str, Any]:
    """One pipeline that the edge feeds: the edge's signing key, its providers and a strict Shopify."""
    config = pipeline_config(kafka_bootstrap, unique("replay"), tmp_path / "state")
    config["signing"] = {"active_key_id": "t1", "keys": {"t1": SIGNING_KEY.decode()}}
    config["providers"] = {name: {"secrets": [secret]} for name, secret in SECRETS.items()}
    config["providers"]["shop-strict"] = {"kind": "shopify", "secrets": [SECRETS["shopify"]], "dedup": "body"}
    return config


def judged(metrics: Metrics) -> int:
    """Inbound records dedup decided on (a forwarded record counts once, where it is decided)."""
    return sum(metrics[f"dedup.{verdict}"] for verdict in ("new", "duplicate", "replayed_body"))


def events_of(reader: CommittedReader, provider: str) -> list[EventRecord]:
    records = [EventRecord.model_validate_json(r.value or b"") for r in reader.records]
    return [record for record in records if record.provider == provider]


async def test_a_github_body_re_posted_with_fresh_delivery_ids_is_delivered_once(
    config: dict[str, Any],
) -> None:
    settings = settings_of(config)
    topics = await create_topics(settings)
    # a captured body whose digest maps to another partition than the first delivery's key (forwarded)
    for n in range(100):
        text = json.dumps({"action": "opened", "issue": {"number": n}, "zen": "Keep it logically awesome."})
        captured = text.encode()
        digest = dedup_identity("body", b"github:d-first", "github", captured)
        if default_partition(digest, PARTITIONS) != default_partition(b"github:d-first", PARTITIONS):
            break
    else:
        raise AssertionError("no body maps elsewhere")
    fresh = [f"d-replay-{i}" for i in range(3)]
    assert {default_partition(f"github:{d}".encode(), PARTITIONS) for d in fresh} != {
        default_partition(digest, PARTITIONS)
    }
    distinct = [json.dumps({"action": "closed", "issue": {"number": 1000 + i}}).encode() for i in range(20)]
    async with (
        CommittedReader(settings.kafka.servers, topics.name("webhooks.events")) as events,
        running_worker_and_edge(settings, topics.inbound) as (client, metrics),
    ):

        async def post(body: bytes, delivery: str) -> None:
            headers = sign_github(body, SECRETS["github"], event="issues", delivery=delivery)
            response = await client.post("/webhooks/github", content=body, headers=headers)
            assert response.status_code == 202, response.text

        await post(captured, "d-first")
        await events.until(lambda r: len(events_of(r, "github")) >= 1, 60, "the first delivery")
        for delivery in fresh:  # the captured request, re-posted with fresh X-GitHub-Delivery ids
            await post(captured, delivery)
        await post(captured, "d-first")  # GitHub's own redelivery: same id, same body
        for i, body in enumerate(distinct):
            await post(body, f"d-distinct-{i}")
        await until(lambda: judged(metrics) >= 25, timeout=60, what="all 25 posts to be judged")
        await events.settle()
    delivered = [event.event_id for event in events_of(events, "github")]
    assert sorted(delivered) == sorted(["d-first", *(f"d-distinct-{i}" for i in range(20))])
    assert metrics["dedup.forwarded"] >= 1
    # counters count processing: a batch re-read after a rebalance under load is judged again
    assert metrics["dedup.replayed_body"] >= 3 and metrics["dedup.duplicate"] >= 1


async def test_a_shopify_topic_changed_on_a_captured_request_does_not_re_route_it(
    config: dict[str, Any],
) -> None:
    settings = settings_of(config)
    topics = await create_topics(settings)
    order = json.dumps({"id": 820982911946154508, "financial_status": "paid", "total_price": "59.99"})
    body = order.encode()
    async with (
        CommittedReader(settings.kafka.servers, topics.name("webhooks.events")) as events,
        running_worker_and_edge(settings, topics.inbound) as (client, metrics),
    ):

        async def post(provider: str, topic: str, webhook_id: str) -> None:
            headers = sign_shopify(body, SECRETS["shopify"], topic=topic, webhook_id=webhook_id)
            response = await client.post(f"/webhooks/{provider}", content=body, headers=headers)
            assert response.status_code == 202, response.text

        # shop-strict (dedup = "body"): the body is the event, whatever the headers say
        await post("shop-strict", "orders/create", "w-1")
        await events.until(lambda r: len(events_of(r, "shop-strict")) >= 1, 60, "the strict shop's order")
        await post("shop-strict", "orders/cancelled", "w-1")  # the same webhook, topic changed
        await post("shop-strict", "orders/cancelled", "w-2")  # ... and under a fresh id
        # shopify (default, body_and_type): Shopify sends one order body as orders/create and orders/paid
        await post("shopify", "orders/create", "s-1")
        await events.until(lambda r: len(events_of(r, "shopify")) >= 1, 60, "orders/create")
        await post("shopify", "orders/paid", "s-2")
        await events.until(lambda r: len(events_of(r, "shopify")) >= 2, 60, "orders/paid")
        await post("shopify", "orders/paid", "s-3")  # the orders/paid request re-posted, fresh id
        await post("shopify", "orders/cancelled", "s-1")  # a known webhook id, topic changed
        await post("shopify", "orders/create", "s-1")  # Shopify's retry
        await until(lambda: judged(metrics) >= 8, timeout=60, what="all 8 posts to be judged")
        await events.settle()
    strict = [(e.event_id, e.event_type) for e in events_of(events, "shop-strict")]
    assert strict == [("w-1", "orders/create")]
    shopify = sorted((e.event_id, e.event_type) for e in events_of(events, "shopify"))
    assert shopify == [("s-1", "orders/create"), ("s-2", "orders/paid")]
    assert metrics["dedup.replayed_body"] >= 2 and metrics["dedup.duplicate"] >= 3  # processing counts


@contextlib.asynccontextmanager
async def running_worker_and_edge(
    settings: Any, inbound: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Metrics]]:
    async with (
        running_worker(settings) as metrics,
        running_edge(settings, inbound) as edge,
        httpx.AsyncClient(base_url=edge.url) as client,
    ):
        yield client, metrics
