"""Poison on the inbound topic never stops a worker: each record is quarantined with its reason."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.deadletter import QuarantineRecord
from schemas.signing import EnvelopeSigner
from tests.support.pipeline import (
    CommittedReader,
    create_topics,
    envelope,
    produce,
    produce_raw,
    running_worker,
    settings_of,
)

pytestmark = pytest.mark.kafka


async def test_poison_records_are_quarantined_and_good_ones_still_flow(config: dict[str, Any]) -> None:
    settings = settings_of(config)
    topics = await create_topics(settings)
    signer = EnvelopeSigner.of(settings.signing)
    stranger = EnvelopeSigner(keys={"dev": b"not-our-key"}, active_key_id="dev")
    good = envelope("stripe", "evt_ok")
    valid = good.model_dump_json().encode()
    poison = [
        (b"stripe:evt_ok", valid, stranger.sign(valid)),  # signed, but not by a trusted edge
        (b"x", b"{\x00 not json", signer.sign(b"{\x00 not json")),
        (b"x", b'{"provider": "stripe"}', signer.sign(b'{"provider": "stripe"}')),
        (b"stripe:someone-else", valid, signer.sign(valid)),
        (b"unsigned", b"hello", []),
    ]
    await produce_raw(settings, poison)
    await produce(settings, [good, envelope("github", "evt_ok2")])
    async with (
        CommittedReader(settings.kafka.servers, topics.quarantine) as quarantine,
        CommittedReader(settings.kafka.servers, topics.name("webhooks.events")) as events,
        running_worker(settings) as metrics,
    ):
        await quarantine.until(lambda r: len(r.records) >= len(poison), 60, "quarantined poison")
        await events.until(lambda r: len(r.records) >= 2, 30, "the good events")
        await events.settle(1.0)
    reasons = sorted(QuarantineRecord.model_validate_json(r.value or b"").reason for r in quarantine.records)
    assert reasons == sorted(
        ["bad_signature", "undecodable", "invalid_envelope", "key_mismatch", "bad_signature"]
    )
    assert sorted(events.keys()) == [b"github:evt_ok2", b"stripe:evt_ok"]
    assert sum(v for k, v in metrics.items() if k.startswith("dedup.quarantined.")) == len(poison)
