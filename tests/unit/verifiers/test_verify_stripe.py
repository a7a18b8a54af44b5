"""Stripe verifier, checked against the official stripe-python SDK in both directions."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
import stripe

from services.edge.verifiers import StripeVerifier, build_verifier
from services.edge.verifiers.signers import sample_body, sign_stripe
from services.errors import BadSignature, MalformedRequest, StaleTimestamp
from tests.unit.verifiers.verifier_support import NOW, lower, provider

SECRET = "whsec_test_secret_one"
OTHER = "whsec_test_secret_two"
BODY = json.dumps(
    {"id": "evt_1", "object": "event", "type": "charge.succeeded", "created": NOW, "data": {"object": {}}}
).encode()


def verifier(*secrets: str, tolerance: int = 300) -> StripeVerifier:
    built = build_verifier(
        name="stripe", kind="stripe", settings=provider("stripe", *secrets, tolerance_seconds=tolerance)
    )
    assert isinstance(built, StripeVerifier)
    return built


async def test_accepts_own_signature_and_reads_the_event() -> None:
    [event] = await verifier(SECRET).verify(BODY, lower(sign_stripe(BODY, SECRET, NOW)), NOW)
    assert event.event_id == "evt_1"
    assert event.event_type == "charge.succeeded"
    assert event.occurred_at == datetime.fromtimestamp(NOW, UTC)
    assert event.body == BODY
    assert event.batch_index is None


def test_sdk_accepts_our_signature() -> None:
    now = int(time.time())  # the SDK checks against the real clock
    header = sign_stripe(BODY, SECRET, now)["Stripe-Signature"]
    assert stripe.WebhookSignature.verify_header(BODY, header, SECRET, tolerance=300)
    event = stripe.Webhook.construct_event(BODY, header, SECRET)
    assert event.id == "evt_1"


async def test_we_accept_the_sdk_signature() -> None:
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRET, timestamp=NOW)
    assert header == sign_stripe(BODY, SECRET, NOW)["Stripe-Signature"]
    # ...and one assembled from the SDK's own primitive, the way stripe-python's tests do it.
    digest = stripe.WebhookSignature._compute_signature(f"{NOW}.{BODY.decode()}", SECRET)
    headers = {"stripe-signature": f"t={NOW},v1={digest},v0=6ffbb59b2300aae63f272406069a9788598b792a"}
    [event] = await verifier(SECRET).verify(BODY, headers, NOW)
    assert event.event_id == "evt_1"


async def test_any_v1_entry_may_match() -> None:
    good = sign_stripe(BODY, SECRET, NOW)["Stripe-Signature"].split(",")[1]
    headers = {"stripe-signature": f"t={NOW},v1={'0' * 64},{good}"}
    assert await verifier(SECRET).verify(BODY, headers, NOW)


async def test_second_of_two_secrets_matches() -> None:
    assert await verifier(OTHER, SECRET).verify(BODY, lower(sign_stripe(BODY, SECRET, NOW)), NOW)


async def test_tampered_body_is_refused() -> None:
    headers = lower(sign_stripe(BODY, SECRET, NOW))
    with pytest.raises(BadSignature):
        await verifier(SECRET).verify(BODY.replace(b"evt_1", b"evt_2"), headers, NOW)


async def test_wrong_secret_is_refused_without_leaking() -> None:
    headers = lower(sign_stripe(BODY, OTHER, NOW))
    with pytest.raises(BadSignature) as caught:
        await verifier(SECRET).verify(BODY, headers, NOW)
    expected = sign_stripe(BODY, SECRET, NOW)["Stripe-Signature"].split("v1=")[1]
    message = str(caught.value)
    assert SECRET not in message and expected not in message and "v1=" not in message
    assert caught.value.status == 401


@pytest.mark.parametrize(("offset", "words"), [(-301, "s old"), (301, "in the future")])
async def test_timestamp_outside_tolerance(offset: int, words: str) -> None:
    headers = lower(sign_stripe(BODY, SECRET, NOW + offset))
    with pytest.raises(StaleTimestamp, match=words) as caught:
        await verifier(SECRET).verify(BODY, headers, NOW)
    assert "tolerance 300 s" in str(caught.value)


async def test_timestamp_at_the_edge_of_tolerance_passes() -> None:
    assert await verifier(SECRET).verify(BODY, lower(sign_stripe(BODY, SECRET, NOW - 300)), NOW)


async def test_tolerance_comes_from_settings() -> None:
    headers = lower(sign_stripe(BODY, SECRET, NOW - 612))
    with pytest.raises(StaleTimestamp, match="is 612 s old, tolerance 600 s"):
        await verifier(SECRET, tolerance=600).verify(BODY, headers, NOW)


async def test_missing_header() -> None:
    with pytest.raises(BadSignature, match="missing Stripe-Signature"):
        await verifier(SECRET).verify(BODY, {}, NOW)


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("v1=" + "a" * 64, "no timestamp"),
        (f"t={NOW}", "no v1 signature"),
        (f"t={NOW},v0=" + "a" * 64, "no v1 signature"),
        (f"t={NOW},garbage", "malformed"),
        ("t=yesterday,v1=" + "a" * 64, "not a Unix timestamp"),
        (f"t={NOW},t={NOW},v1=" + "a" * 64, "more than one timestamp"),
        ("   ", "missing"),
    ],
)
async def test_malformed_header(header: str, words: str) -> None:
    with pytest.raises(BadSignature, match=words):
        await verifier(SECRET).verify(BODY, {"stripe-signature": header}, NOW)


async def test_signed_body_that_is_not_json() -> None:
    body = b"not json"
    with pytest.raises(MalformedRequest) as caught:
        await verifier(SECRET).verify(body, lower(sign_stripe(body, SECRET, NOW)), NOW)
    assert caught.value.status == 400


@pytest.mark.parametrize("missing", ["id", "type"])
async def test_signed_body_without_id_or_type(missing: str) -> None:
    event = json.loads(BODY)
    del event[missing]
    body = json.dumps(event).encode()
    with pytest.raises(MalformedRequest, match=repr(missing)):
        await verifier(SECRET).verify(body, lower(sign_stripe(body, SECRET, NOW)), NOW)


async def test_sample_body_verifies() -> None:
    body = sample_body("stripe", now=NOW)
    [event] = await verifier(SECRET).verify(body, lower(sign_stripe(body, SECRET, NOW)), NOW)
    assert event.event_id.startswith("evt_")
    assert event.event_type == "payment_intent.succeeded"
