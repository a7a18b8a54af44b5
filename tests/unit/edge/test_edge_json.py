"""The edge and the worker read JSON alike: the edge answers 202 or 400 (never 500) to any body, and
whatever it accepted the worker turns into a strict-JSON event record.

No broker here: the parse is what is under test, so a recording producer stands in for Kafka and
keeps the envelopes the edge would have written.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pydantic_core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from schemas.envelope import WebhookEnvelope
from schemas.events import event_record_json
from schemas.producer import encode_envelope
from services.edge.app import create_app
from services.edge.publisher import EnvelopeProducer
from services.edge.verifiers.signers import (
    generate_sendgrid_key,
    sign_github,
    sign_sendgrid,
    sign_shopify,
    sign_standard,
    sign_stripe,
)
from tests.support.edge import SECRETS, edge_settings, envelope_signer
from tests.unit.edge.test_payload import json_values, strict_stdlib

SENDGRID_KEY, SENDGRID_PUBLIC = generate_sendgrid_key()


class RecordingProducer(EnvelopeProducer):
    """Acknowledges every envelope at once and keeps it (encoded, so the size check still runs)."""

    def __init__(self) -> None:
        super().__init__("127.0.0.1:1", envelope_signer())
        self.written: list[WebhookEnvelope] = []

    @property
    def started(self) -> bool:
        return True

    async def send_and_wait(self, envelope: WebhookEnvelope, timeout: float) -> Any:
        return await self.send_many_and_wait([envelope], timeout)

    async def send_many_and_wait(self, envelopes: list[WebhookEnvelope], timeout: float) -> Any:
        for envelope in envelopes:
            encode_envelope(envelope, self.signer)
        self.written.extend(envelopes)
        return []


PRODUCER = RecordingProducer()
APP: Starlette = create_app(
    edge_settings("127.0.0.1:1", providers={"sendgrid": {"secrets": [SENDGRID_PUBLIC]}}), producer=PRODUCER
)


def sign(kind: str, body: bytes) -> dict[str, str]:
    now = int(time.time())
    if kind == "stripe":
        return sign_stripe(body, SECRETS["stripe"], now)
    if kind == "github":
        return sign_github(body, SECRETS["github"])
    if kind == "shopify":
        return sign_shopify(body, SECRETS["shopify"])
    if kind == "standard":
        return sign_standard(body, SECRETS["standard"], timestamp=now)
    return sign_sendgrid(body, SENDGRID_KEY, now)


def shaped(kind: str, event_id: bytes, extra: bytes) -> bytes:
    """A body of ``kind``'s shape whose id is the raw JSON text ``event_id`` and whose ``x`` is ``extra``."""
    if kind == "stripe":
        return b'{"id":"' + event_id + b'","type":"charge.succeeded","created":1700000000,"x":' + extra + b"}"
    if kind == "standard":
        return b'{"type":"invoice.paid","timestamp":"2024-01-01T00:00:00Z","x":' + extra + b"}"
    if kind == "sendgrid":
        return b'[{"sg_event_id":"' + event_id + b'","event":"open","x":' + extra + b"}]"
    return b'{"action":"opened","x":' + extra + b"}"  # github, shopify


special = st.sampled_from(
    [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1E+400", b"1e-999", b"1" + b"0" * 400 + b".0",
     b'"\\ud800"', b'"\\udfff\\ud800"', b'"\xed\xa0\x80"', b'"\xff"', b"\x00"]
)  # fmt: skip
deep = st.integers(min_value=150, max_value=1500).map(lambda d: b"[" * d + b"1" + b"]" * d)
extras = st.one_of(json_values.map(pydantic_core.to_json), special, deep)
event_ids = st.sampled_from(
    [b"evt_1", b"evt_\\ud800", b"evt_\\udc00x", b"\\u00e9v\\ud83d\\ude00", b"e\xed\xa0\x80"]
)


@st.composite
def bodies(draw: st.DrawFn, kind: str) -> bytes:
    body = shaped(kind, draw(event_ids), draw(extras))
    encoding = draw(st.sampled_from(["as is", "bom", "utf-16", "utf-32", "random bytes", "cut"]))
    if encoding == "bom":
        return b"\xef\xbb\xbf" + body
    if encoding in ("utf-16", "utf-32"):
        return body.decode("utf-8", "replace").encode(encoding)
    if encoding == "random bytes":
        return draw(st.binary(max_size=200))
    if encoding == "cut":
        return body[: draw(st.integers(min_value=0, max_value=len(body)))]
    return body


async def post(kind: str, body: bytes) -> httpx.Response:
    headers = sign(kind, body)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=APP), base_url="http://edge") as client:
        return await client.post(f"/webhooks/{kind}", content=body, headers=headers)


@given(st.sampled_from(["stripe", "github", "shopify", "standard", "sendgrid"]).flatmap(
    lambda kind: st.tuples(st.just(kind), bodies(kind))
))  # fmt: skip
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_edge_answers_202_or_400_and_the_worker_parses_what_it_accepted(case: tuple[str, bytes]) -> None:
    kind, body = case
    PRODUCER.written.clear()
    response = asyncio.run(post(kind, body))
    assert response.status_code in (202, 400), response.text
    if response.status_code == 400:
        assert response.json()["error"] == "malformed" and response.json()["message"]
        assert not PRODUCER.written
        return
    assert PRODUCER.written
    for envelope in PRODUCER.written:
        strict_stdlib(event_record_json(envelope))  # the worker's record: strict JSON, never a dead letter


def test_listed_cases_from_the_issue() -> None:
    """Each was accepted and then dead-lettered, written as bare NaN, or answered 500."""
    refused = {
        "BOM": ("stripe", b"\xef\xbb\xbf" + shaped("stripe", b"evt_bom", b"1")),
        "UTF-16": ("stripe", shaped("stripe", b"evt_u16", b"1").decode().encode("utf-16")),
        "nesting 300": ("github", shaped("github", b"", b"[" * 300 + b"]" * 300)),
        "nesting 5000": ("shopify", shaped("shopify", b"", b"[" * 5000 + b"]" * 5000)),
        "NaN": ("standard", shaped("standard", b"", b"NaN")),
        "1e999": ("stripe", shaped("stripe", b"evt_big", b"1e999")),
        "Stripe id with a lone surrogate": ("stripe", shaped("stripe", b"evt_\\ud800", b"1")),
        "SendGrid field with a lone surrogate": ("sendgrid", shaped("sendgrid", b"sg_1", b'"\\udc00"')),
    }
    for what, (kind, body) in refused.items():
        PRODUCER.written.clear()
        response = asyncio.run(post(kind, body))
        assert response.status_code == 400, (what, response.text)
        assert "not valid JSON" in response.json()["message"], what
        assert not PRODUCER.written
    for kind in ("stripe", "github", "shopify", "standard", "sendgrid"):
        body = shaped(kind, b"evt_ok_\\u00e9", b'{"amount":1.5e300,"big":123456789012345678901234567890}')
        response = asyncio.run(post(kind, body))
        assert response.status_code == 202, (kind, response.text)
