"""Edge to worker to ``webhooks.events`` on the real broker: every body the edge accepted becomes a
strict-JSON event record (none dead-lettered as malformed); every body it refused got 400."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from schemas.payload import parse_json
from schemas.topics import DLQ, EVENTS
from services.edge.verifiers.signers import sign_stripe
from tests.support.edge import SIGNING_KEY, running_edge
from tests.support.pipeline import (
    CommittedReader,
    create_topics,
    pipeline_config,
    running_worker,
    settings_of,
)
from tests.unit.edge.test_payload import strict_stdlib

pytestmark = pytest.mark.kafka

SECRET = "whsec_test"  # tests.support.pipeline's Stripe secret


def stripe(event_id: str, data: bytes) -> bytes:
    return b'{"id":"' + event_id.encode() + b'","type":"charge.succeeded","created":1,"data":' + data + b"}"


ACCEPTED = {
    "evt_unicode": stripe("evt_unicode", '{"name":"\\u00e9\\ud83d\\ude00 ü 日本"}'.encode()),
    "evt_numbers": stripe(
        "evt_numbers", b'{"big":123456789012345678901234567890,"f":1.5e300,"z":-0.0,"u":1e-999}'
    ),
    "evt_deep": stripe("evt_deep", b"[" * 198 + b"1" + b"]" * 198),
    "evt_large": stripe("evt_large", json.dumps({"pad": "é" * 400_000}, ensure_ascii=False).encode()),
}
REFUSED = {
    "evt_nan": stripe("evt_nan", b"NaN"),
    "evt_inf": stripe("evt_inf", b"1e999"),
    "evt_surrogate": stripe("evt_\\ud800", b"1"),
    "evt_deeper": stripe("evt_deeper", b"[" * 250 + b"1" + b"]" * 250),
    "evt_bom": b"\xef\xbb\xbf" + stripe("evt_bom", b"1"),
}


async def test_every_accepted_body_reaches_events_as_strict_json(
    kafka_bootstrap: str, unique: Callable[[str], str], tmp_path: Path
) -> None:
    config = pipeline_config(kafka_bootstrap, unique("json"), tmp_path)
    config["signing"] = {"active_key_id": "t1", "keys": {"t1": SIGNING_KEY.decode()}}
    config["edge"] = {"produce_timeout_seconds": 60}  # new topics elect their leaders slowly under load
    settings = settings_of(config)
    topics = await create_topics(settings)
    async with (
        running_edge(settings, topics.inbound) as edge,
        httpx.AsyncClient(base_url=edge.url, timeout=90) as client,
    ):
        for name, body in {**ACCEPTED, **REFUSED}.items():
            headers = sign_stripe(body, SECRET, int(time.time()))
            response = await client.post("/webhooks/stripe", content=body, headers=headers)
            expected = 202 if name in ACCEPTED else 400
            assert response.status_code == expected, (name, response.text)

    async with (
        running_worker(settings),
        CommittedReader(kafka_bootstrap, topics.name(EVENTS)) as events,
        CommittedReader(kafka_bootstrap, topics.name(DLQ)) as dead,
    ):
        await events.until(lambda r: len(r.records) >= len(ACCEPTED), timeout=90, what="the event records")
        await dead.settle()
    assert sorted(events.keys()) == sorted(f"stripe:{name}".encode() for name in ACCEPTED)
    assert dead.records == []  # nothing the edge accepted is malformed to the worker
    for record in events.records:
        value = strict_stdlib(record.value)  # an independent strict reader
        assert parse_json(record.value) == value
        event_id = value["event_id"]
        assert value["data"] == parse_json(ACCEPTED[event_id])  # the body, parsed, unchanged
