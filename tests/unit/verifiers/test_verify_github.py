"""GitHub verifier, checked against GitHub's documented example signature."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from services.edge.verifiers import GitHubVerifier, build_verifier
from services.edge.verifiers.signers import sample_body, sign_github
from services.errors import BadSignature, MalformedRequest
from tests.unit.verifiers.verifier_support import NOW, lower, provider

# docs.github.com, "Validating webhook deliveries" > "Testing the webhook payload validation".
DOC_SECRET = "It's a Secret to Everybody"
DOC_PAYLOAD = b"Hello, World!"
DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

SECRET = "gh-secret-one"
OTHER = "gh-secret-two"
BODY = json.dumps({"action": "opened", "issue": {"number": 1}}).encode()


def verifier(*secrets: str) -> GitHubVerifier:
    built = build_verifier(name="github", kind="github", settings=provider("github", *secrets))
    assert isinstance(built, GitHubVerifier)
    return built


def headers(body: bytes, secret: str = SECRET, **kwargs: str) -> dict[str, str]:
    return lower(sign_github(body, secret, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958", **kwargs))


def test_signer_reproduces_the_documented_example() -> None:
    assert sign_github(DOC_PAYLOAD, DOC_SECRET)["X-Hub-Signature-256"] == DOC_SIGNATURE


async def test_documented_example_passes_the_signature_check() -> None:
    # "Hello, World!" is not JSON: refused as malformed (400) *after* the signature was accepted.
    hdrs = {"x-hub-signature-256": DOC_SIGNATURE, "x-github-delivery": "d1", "x-github-event": "ping"}
    with pytest.raises(MalformedRequest):
        await verifier(DOC_SECRET).verify(DOC_PAYLOAD, hdrs, NOW)
    with pytest.raises(BadSignature):
        await verifier(SECRET).verify(DOC_PAYLOAD, hdrs, NOW)


async def test_json_delivery_with_action() -> None:
    [event] = await verifier(SECRET).verify(BODY, headers(BODY), NOW)
    assert event.event_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert event.event_type == "issues.opened"
    assert event.occurred_at is None
    assert event.body == BODY


async def test_event_without_action_keeps_the_plain_type() -> None:
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    [event] = await verifier(SECRET).verify(body, headers(body, event="ping"), NOW)
    assert event.event_type == "ping"


async def test_form_encoded_delivery() -> None:
    body = urlencode({"payload": BODY.decode()}).encode()
    hdrs = headers(body, content_type="application/x-www-form-urlencoded")
    [event] = await verifier(SECRET).verify(body, hdrs, NOW)
    assert event.event_type == "issues.opened"
    assert event.body == body  # the raw form body, which is what GitHub signed


@pytest.mark.parametrize("body", [b"payload=not-json", b"other=1", b"payload=%7B%7D&payload=%7B%7D", b"%%%"])
async def test_form_delivery_without_one_json_payload(body: bytes) -> None:
    hdrs = headers(body, content_type="application/x-www-form-urlencoded; charset=utf-8")
    with pytest.raises(MalformedRequest):
        await verifier(SECRET).verify(body, hdrs, NOW)


async def test_uppercase_hex_is_accepted() -> None:
    hdrs = headers(BODY)
    hdrs["x-hub-signature-256"] = "sha256=" + hdrs["x-hub-signature-256"][7:].upper()
    assert await verifier(SECRET).verify(BODY, hdrs, NOW)


async def test_second_of_two_secrets_matches() -> None:
    assert await verifier(OTHER, SECRET).verify(BODY, headers(BODY), NOW)


async def test_tampered_body() -> None:
    with pytest.raises(BadSignature):
        await verifier(SECRET).verify(BODY + b" ", headers(BODY), NOW)


async def test_wrong_secret() -> None:
    with pytest.raises(BadSignature) as caught:
        await verifier(SECRET).verify(BODY, headers(BODY, OTHER), NOW)
    assert SECRET not in str(caught.value)


async def test_missing_signature() -> None:
    hdrs = headers(BODY)
    del hdrs["x-hub-signature-256"]
    with pytest.raises(BadSignature, match="missing X-Hub-Signature-256"):
        await verifier(SECRET).verify(BODY, hdrs, NOW)


@pytest.mark.parametrize("value", ["757107ea", "sha1=757107ea", "sha256=", "sha256=zz"])
async def test_malformed_signature(value: str) -> None:
    hdrs = headers(BODY)
    hdrs["x-hub-signature-256"] = value
    with pytest.raises(BadSignature):
        await verifier(SECRET).verify(BODY, hdrs, NOW)


@pytest.mark.parametrize("missing", ["x-github-delivery", "x-github-event"])
async def test_missing_id_or_type(missing: str) -> None:
    hdrs = headers(BODY)
    del hdrs[missing]
    with pytest.raises(MalformedRequest, match="missing X-GitHub"):
        await verifier(SECRET).verify(BODY, hdrs, NOW)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"\xff\xfe"])
async def test_signed_body_that_is_not_a_json_object(body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        await verifier(SECRET).verify(body, headers(body), NOW)


async def test_sample_body_verifies() -> None:
    body = sample_body("github")
    [event] = await verifier(SECRET).verify(body, lower(sign_github(body, SECRET)), NOW)
    assert event.event_type == "issues.opened"
