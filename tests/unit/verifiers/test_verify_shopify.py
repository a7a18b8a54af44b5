"""Shopify verifier, checked against a vector computed independently with the openssl CLI."""

from __future__ import annotations

import base64
import shutil
import subprocess
from datetime import UTC, datetime

import pytest

from services.edge.verifiers import ShopifyVerifier, build_verifier
from services.edge.verifiers.signers import sample_body, sign_shopify
from services.errors import BadSignature, MalformedRequest
from tests.unit.verifiers.verifier_support import NOW, lower, provider

# No documented Shopify vector was found; this one was computed with
#   printf '%s' "$VECTOR_BODY" | openssl dgst -sha256 -hmac "$VECTOR_SECRET" -binary | base64
VECTOR_SECRET = "shpss_breakwater_test_secret"
VECTOR_BODY = b'{"id":820982911946154508,"email":"jon@example.com","total_price":"19.99"}'
VECTOR_HMAC = "RSJNMyfRDCzyLrOOgv0JsKCgY6JVO8GkfZdb0Jk+6ag="

SECRET = "shopify-secret-one"
OTHER = "shopify-secret-two"


def verifier(*secrets: str) -> ShopifyVerifier:
    built = build_verifier(name="shopify", kind="shopify", settings=provider("shopify", *secrets))
    assert isinstance(built, ShopifyVerifier)
    return built


def headers(body: bytes = VECTOR_BODY, secret: str = SECRET) -> dict[str, str]:
    return lower(
        sign_shopify(
            body,
            secret,
            topic="orders/create",
            webhook_id="b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            triggered_at=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        )
    )


async def test_openssl_vector() -> None:
    hdrs = {
        "x-shopify-hmac-sha256": VECTOR_HMAC,
        "x-shopify-webhook-id": "w1",
        "x-shopify-topic": "orders/create",
        "x-shopify-triggered-at": "2023-03-29T18:00:27.877041743Z",
    }
    [event] = await verifier(VECTOR_SECRET).verify(VECTOR_BODY, hdrs, NOW)
    assert (event.event_id, event.event_type, event.body) == ("w1", "orders/create", VECTOR_BODY)
    assert event.occurred_at == datetime(2023, 3, 29, 18, 0, 27, 877041, tzinfo=UTC)
    assert sign_shopify(VECTOR_BODY, VECTOR_SECRET)["X-Shopify-Hmac-Sha256"] == VECTOR_HMAC


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_signer_agrees_with_openssl_on_another_body() -> None:
    body = sample_body("shopify", now=NOW)
    digest = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", SECRET, "-binary"],
        input=body,
        capture_output=True,
        check=True,
    ).stdout
    assert sign_shopify(body, SECRET)["X-Shopify-Hmac-Sha256"] == base64.b64encode(digest).decode()


async def test_reads_id_topic_and_time_from_headers() -> None:
    [event] = await verifier(SECRET).verify(VECTOR_BODY, headers(), NOW)
    assert event.event_id == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    assert event.event_type == "orders/create"
    assert event.occurred_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


async def test_event_id_falls_back_to_x_shopify_event_id() -> None:
    hdrs = headers()
    del hdrs["x-shopify-webhook-id"]
    hdrs["x-shopify-event-id"] = "e-42"
    [event] = await verifier(SECRET).verify(VECTOR_BODY, hdrs, NOW)
    assert event.event_id == "e-42"


async def test_unreadable_or_missing_triggered_at_is_none() -> None:
    hdrs = headers()
    hdrs["x-shopify-triggered-at"] = "last tuesday"
    [event] = await verifier(SECRET).verify(VECTOR_BODY, hdrs, NOW)
    assert event.occurred_at is None
    del hdrs["x-shopify-triggered-at"]
    [event] = await verifier(SECRET).verify(VECTOR_BODY, hdrs, NOW)
    assert event.occurred_at is None


async def test_no_freshness_check_on_retries() -> None:
    # Shopify retries for 48 h with the original X-Shopify-Triggered-At; that is not staleness.
    assert await verifier(SECRET).verify(VECTOR_BODY, headers(), NOW + 2 * 86400)


async def test_second_of_two_secrets_matches() -> None:
    assert await verifier(OTHER, SECRET).verify(VECTOR_BODY, headers(), NOW)


async def test_tampered_body() -> None:
    with pytest.raises(BadSignature):
        await verifier(SECRET).verify(VECTOR_BODY.replace(b"19.99", b"0.01"), headers(), NOW)


async def test_wrong_secret() -> None:
    with pytest.raises(BadSignature) as caught:
        await verifier(SECRET).verify(VECTOR_BODY, headers(secret=OTHER), NOW)
    assert SECRET not in str(caught.value)


async def test_missing_signature() -> None:
    hdrs = headers()
    del hdrs["x-shopify-hmac-sha256"]
    with pytest.raises(BadSignature, match="missing X-Shopify-Hmac-Sha256"):
        await verifier(SECRET).verify(VECTOR_BODY, hdrs, NOW)


@pytest.mark.parametrize("value", ["not base64!", "abc", "AAAA"])
async def test_malformed_signature(value: str) -> None:
    hdrs = headers()
    hdrs["x-shopify-hmac-sha256"] = value
    with pytest.raises(BadSignature):
        await verifier(SECRET).verify(VECTOR_BODY, hdrs, NOW)


async def test_missing_ids() -> None:
    hdrs = headers()
    del hdrs["x-shopify-webhook-id"]
    with pytest.raises(MalformedRequest, match="X-Shopify-Webhook-Id or X-Shopify-Event-Id"):
        await verifier(SECRET).verify(VECTOR_BODY, hdrs, NOW)


async def test_missing_topic() -> None:
    hdrs = headers()
    del hdrs["x-shopify-topic"]
    with pytest.raises(MalformedRequest, match="X-Shopify-Topic"):
        await verifier(SECRET).verify(VECTOR_BODY, hdrs, NOW)


async def test_signed_body_that_is_not_json() -> None:
    body = b"<order><id>1</id></order>"
    with pytest.raises(MalformedRequest):
        await verifier(SECRET).verify(body, headers(body), NOW)


async def test_sample_body_verifies() -> None:
    body = sample_body("shopify")
    [event] = await verifier(SECRET).verify(body, lower(sign_shopify(body, SECRET)), NOW)
    assert event.event_type == "orders/create"
