"""SendGrid verifier, checked against SendGrid's own EventWebhook test vectors and generated keys."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.config import ConfigError
from services.edge.verifiers import SendGridVerifier, build_verifier
from services.edge.verifiers.sendgrid import load_public_key, signature_valid
from services.edge.verifiers.signers import generate_sendgrid_key, sample_body, sign_sendgrid
from services.errors import BadSignature, MalformedRequest, StaleTimestamp
from tests.unit.verifiers.verifier_support import NOW, lower, provider

# sendgrid/sendgrid-python, test/unit/test_eventwebhook.py (a real one-event batch, trailing CRLF included).
PY_PUBLIC_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7"
    "dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
PY_SIGNATURE = (
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
)
PY_TIMESTAMP = "1600112502"
PY_EVENT = {
    "email": "hello@world.com",
    "event": "dropped",
    "reason": "Bounced Address",
    "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
    "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
    "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
    "timestamp": 1600112492,
}
PY_PAYLOAD = json.dumps([PY_EVENT], sort_keys=True, separators=(",", ":")).encode() + b"\r\n"

# sendgrid/sendgrid-nodejs, packages/eventwebhook/src/eventwebhook.spec.js (payload is a bare object).
JS_PUBLIC_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4C"
    "wrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA=="
)
JS_SIGNATURE = (
    "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0="
)
JS_TIMESTAMP = "1588788367"
JS_PAYLOAD = b'{"category":"example_payload","event":"test_event","message_id":"message_id"}'

SIG = "x-twilio-email-event-webhook-signature"
TS = "x-twilio-email-event-webhook-timestamp"

KEY, PUBLIC = generate_sendgrid_key()
OTHER_KEY, OTHER_PUBLIC = generate_sendgrid_key()
BATCH = sample_body("sendgrid", event_id="sg_batch", now=NOW, count=3)


def verifier(*keys: str) -> SendGridVerifier:
    built = build_verifier(name="sendgrid", kind="sendgrid", settings=provider("sendgrid", *keys))
    assert isinstance(built, SendGridVerifier)
    return built


def headers(
    body: bytes = BATCH, key: ec.EllipticCurvePrivateKey = KEY, timestamp: int = NOW
) -> dict[str, str]:
    return lower(sign_sendgrid(body, key, timestamp))


async def test_sendgrid_python_vector() -> None:
    hdrs = {SIG: PY_SIGNATURE, TS: PY_TIMESTAMP}
    [event] = await verifier(PY_PUBLIC_KEY).verify(PY_PAYLOAD, hdrs, int(PY_TIMESTAMP))
    assert event.event_id == PY_EVENT["sg_event_id"]
    assert event.event_type == "dropped"
    assert event.occurred_at == datetime.fromtimestamp(1600112492, UTC)
    assert event.batch_index == 0
    assert json.loads(event.body) == PY_EVENT


async def test_sendgrid_python_vector_refused_with_tampering() -> None:
    with pytest.raises(BadSignature):
        await verifier(PY_PUBLIC_KEY).verify(
            PY_PAYLOAD.replace(b"dropped", b"opened"), {SIG: PY_SIGNATURE, TS: PY_TIMESTAMP}, 1600112502
        )
    with pytest.raises(BadSignature):  # the SDK's "bad key" case
        bad = (
            "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQr"
            "Ibsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA=="
        )
        await verifier(bad).verify(PY_PAYLOAD, {SIG: PY_SIGNATURE, TS: PY_TIMESTAMP}, 1600112502)


def test_sendgrid_nodejs_vector_on_the_signature_primitive() -> None:
    key = load_public_key(JS_PUBLIC_KEY)
    signature = base64.b64decode(JS_SIGNATURE)
    assert signature_valid(key, JS_TIMESTAMP, JS_PAYLOAD, signature)
    assert not signature_valid(key, "1588788368", JS_PAYLOAD, signature)
    assert not signature_valid(key, JS_TIMESTAMP, b"payload", signature)


async def test_batch_becomes_one_event_each() -> None:
    events = await verifier(PUBLIC).verify(BATCH, headers(), NOW)
    batch = json.loads(BATCH)
    assert [e.event_id for e in events] == ["sg_batch-0", "sg_batch-1", "sg_batch-2"]
    assert [e.batch_index for e in events] == [0, 1, 2]
    assert all(e.event_type == "delivered" for e in events)
    for event, original in zip(events, batch, strict=True):
        assert event.body == json.dumps(original, separators=(",", ":")).encode()


async def test_event_body_keeps_key_order_and_unicode() -> None:
    body = '[{"sg_event_id":"a","event":"open","useragent":"Mozilla ü","timestamp":1}]'.encode()
    [event] = await verifier(PUBLIC).verify(body, headers(body), NOW)
    assert event.body == body[1:-1]


async def test_pem_key_is_accepted() -> None:
    pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert await verifier(pem.decode()).verify(BATCH, headers(), NOW)


async def test_second_of_two_keys_matches() -> None:
    assert await verifier(OTHER_PUBLIC, PUBLIC).verify(BATCH, headers(), NOW)


async def test_tampered_body() -> None:
    with pytest.raises(BadSignature):
        await verifier(PUBLIC).verify(BATCH.replace(b"delivered", b"bounce"), headers(), NOW)


async def test_wrong_key() -> None:
    with pytest.raises(BadSignature):
        await verifier(PUBLIC).verify(BATCH, headers(key=OTHER_KEY), NOW)


@pytest.mark.parametrize(("offset", "words"), [(-301, "s old"), (301, "in the future")])
async def test_timestamp_outside_tolerance(offset: int, words: str) -> None:
    with pytest.raises(StaleTimestamp, match=words):
        await verifier(PUBLIC).verify(BATCH, headers(timestamp=NOW + offset), NOW)


async def test_signed_timestamp_cannot_be_changed() -> None:
    hdrs = headers()
    hdrs[TS] = str(NOW + 1)
    with pytest.raises(BadSignature):
        await verifier(PUBLIC).verify(BATCH, hdrs, NOW)


@pytest.mark.parametrize("missing", [SIG, TS])
async def test_missing_header(missing: str) -> None:
    hdrs = headers()
    del hdrs[missing]
    with pytest.raises(BadSignature, match="missing X-Twilio-Email-Event-Webhook"):
        await verifier(PUBLIC).verify(BATCH, hdrs, NOW)


@pytest.mark.parametrize(
    ("header", "value", "words"),
    [(SIG, "not base64!", "not base64"), (SIG, "AAAA", "does not match"), (TS, "soon", "not a Unix")],
)
async def test_malformed_header(header: str, value: str, words: str) -> None:
    hdrs = headers()
    hdrs[header] = value
    with pytest.raises(BadSignature, match=words):
        await verifier(PUBLIC).verify(BATCH, hdrs, NOW)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"not json", "not valid JSON"),
        (b'{"sg_event_id": "a", "event": "open"}', "non-empty JSON array"),
        (b"[]", "non-empty JSON array"),
        (b'[{"sg_event_id": "a", "event": "open"}, 7]', "event 1 is not a JSON object"),
        (b'[{"event": "open"}]', "event 0 has no 'sg_event_id'"),
        (b'[{"sg_event_id": "a"}]', "event 0 has no 'event'"),
    ],
)
async def test_signed_body_that_is_malformed(body: bytes, words: str) -> None:
    with pytest.raises(MalformedRequest, match=words):
        await verifier(PUBLIC).verify(body, headers(body), NOW)


@pytest.mark.parametrize(
    "key",
    [
        "not base64!",
        base64.b64encode(b"not DER").decode(),
        base64.b64encode(
            ec.generate_private_key(ec.SECP384R1())
            .public_key()
            .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        ).decode(),
    ],
)
def test_unusable_key_fails_at_start(key: str) -> None:
    with pytest.raises(ConfigError, match=r"providers\.sendgrid\.secrets\[0\]"):
        verifier(key)
