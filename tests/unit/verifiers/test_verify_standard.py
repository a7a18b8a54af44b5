"""Standard Webhooks verifier, checked against the spec's test vector and the reference library."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from services.config import ConfigError
from services.edge.verifiers import StandardWebhooksVerifier, build_verifier
from services.edge.verifiers.signers import sample_body, sign_standard
from services.errors import BadSignature, MalformedRequest, StaleTimestamp
from tests.unit.verifiers.verifier_support import NOW, lower, provider

# The spec's vector, as in standard-webhooks/libraries/python/tests/test_webhooks.py (test_sign_function).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_PAYLOAD = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET = "whsec_dGhlLWZpcnN0LXNlY3JldC1vZi10aGUtdGVzdHM="
OTHER = "whsec_dGhlLXNlY29uZC1zZWNyZXQtb2YtdGhlLXRlc3Rz"
BODY = json.dumps({"type": "invoice.paid", "timestamp": "2023-11-14T22:13:20.000Z", "data": {}}).encode()


def verifier(*secrets: str) -> StandardWebhooksVerifier:
    built = build_verifier(name="standard", kind="standard", settings=provider("standard", *secrets))
    assert isinstance(built, StandardWebhooksVerifier)
    return built


def headers(body: bytes = BODY, secret: str = SECRET, timestamp: int = NOW, **kw: str) -> dict[str, str]:
    return lower(sign_standard(body, secret, timestamp=timestamp, msg_id="msg_1", **kw))


async def test_spec_vector() -> None:
    hdrs = {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }
    # The spec payload has no "type": the signature passes, then the body is refused as malformed.
    with pytest.raises(MalformedRequest, match="'type'"):
        await verifier(SPEC_SECRET).verify(SPEC_PAYLOAD, hdrs, SPEC_TIMESTAMP)
    signed = sign_standard(SPEC_PAYLOAD, SPEC_SECRET, timestamp=SPEC_TIMESTAMP, msg_id=SPEC_ID)
    assert signed["webhook-signature"] == SPEC_SIGNATURE


async def test_reference_library_signature_verifies_with_ours() -> None:
    signature = Webhook(SECRET).sign(SPEC_ID, datetime.fromtimestamp(NOW, UTC), BODY.decode())
    hdrs = {"webhook-id": SPEC_ID, "webhook-timestamp": str(NOW), "webhook-signature": signature}
    [event] = await verifier(SECRET).verify(BODY, hdrs, NOW)
    assert event.event_id == SPEC_ID
    assert event.event_type == "invoice.paid"
    assert event.occurred_at == datetime.fromtimestamp(NOW, UTC)
    assert event.body == BODY


def test_our_signature_verifies_with_the_reference_library() -> None:
    now = int(time.time())  # the reference library checks against the real clock
    signed = sign_standard(BODY, SECRET, timestamp=now, msg_id="msg_2")
    assert Webhook(SECRET).verify(BODY, signed) == json.loads(BODY)


async def test_svix_header_aliases() -> None:
    [event] = await verifier(SECRET).verify(BODY, headers(prefix="svix"), NOW)
    assert event.event_id == "msg_1"


async def test_secret_without_prefix_is_accepted() -> None:
    assert await verifier(SECRET.removeprefix("whsec_")).verify(BODY, headers(), NOW)


async def test_other_versions_are_skipped_and_any_v1_may_match() -> None:
    hdrs = headers()
    hdrs["webhook-signature"] = (
        "v1a,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "
        + hdrs["webhook-signature"]
    )
    assert await verifier(SECRET).verify(BODY, hdrs, NOW)


async def test_second_of_two_secrets_matches() -> None:
    assert await verifier(OTHER, SECRET).verify(BODY, headers(), NOW)


async def test_tampered_body() -> None:
    with pytest.raises(BadSignature):
        await verifier(SECRET).verify(BODY.replace(b"paid", b"void"), headers(), NOW)


async def test_signed_id_cannot_be_swapped() -> None:
    hdrs = headers()
    hdrs["webhook-id"] = "msg_other"
    with pytest.raises(BadSignature):
        await verifier(SECRET).verify(BODY, hdrs, NOW)


async def test_wrong_secret() -> None:
    with pytest.raises(BadSignature) as caught:
        await verifier(SECRET).verify(BODY, headers(secret=OTHER), NOW)
    assert "dGhl" not in str(caught.value)


@pytest.mark.parametrize(("offset", "words"), [(-301, "s old"), (301, "in the future")])
async def test_timestamp_outside_tolerance(offset: int, words: str) -> None:
    with pytest.raises(StaleTimestamp, match=words):
        await verifier(SECRET).verify(BODY, headers(timestamp=NOW + offset), NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
async def test_missing_header(missing: str) -> None:
    hdrs = headers()
    del hdrs[missing]
    with pytest.raises(BadSignature, match=f"missing {missing}"):
        await verifier(SECRET).verify(BODY, hdrs, NOW)


@pytest.mark.parametrize(
    ("header", "value", "words"),
    [
        ("webhook-signature", "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "malformed"),
        ("webhook-signature", "v1,not*base64", "not base64"),
        ("webhook-signature", "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "no v1 signature"),
        ("webhook-timestamp", "2023-11-14T22:13:20Z", "not a Unix timestamp"),
        ("webhook-timestamp", "-5", "not a Unix timestamp"),
    ],
)
async def test_malformed_header(header: str, value: str, words: str) -> None:
    hdrs = headers()
    hdrs[header] = value
    with pytest.raises(BadSignature, match=words):
        await verifier(SECRET).verify(BODY, hdrs, NOW)


@pytest.mark.parametrize("body", [b"not json", b'["type"]'])
async def test_signed_body_that_is_not_a_json_object(body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        await verifier(SECRET).verify(body, headers(body), NOW)


async def test_signed_body_without_type() -> None:
    body = b'{"data": {}}'
    with pytest.raises(MalformedRequest, match="'type'"):
        await verifier(SECRET).verify(body, headers(body), NOW)


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not base64!"])
def test_unusable_secret_fails_at_start(secret: str) -> None:
    with pytest.raises(ConfigError, match=r"providers\.standard\.secrets\[0\]"):
        verifier(secret)


async def test_sample_body_verifies() -> None:
    body = sample_body("standard", now=NOW)
    [event] = await verifier(SECRET).verify(body, lower(sign_standard(body, SECRET, timestamp=NOW)), NOW)
    assert event.event_type == "invoice.paid"
    assert event.event_id.startswith("msg_")
