"""Signed deliveries and event-record headers without a broker: settings, signing, forwarding, limits.

The end-to-end checks (the SDKs on a real server, headers read from the broker) are in
``tests/integration/streams/test_signed_deliveries.py``.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from schemas.headers import EVENT_HEADER_MAX_CHARS, EVENT_ID_HEADER, EVENT_TYPE_HEADER, TRACEPARENT_HEADER
from services.config import ConfigError, HttpDestination, load_settings
from services.edge.verifiers.signers import sign_standard
from streams.destinations import OutboundDeliverer, webhook_id
from streams.dispatch import event_headers
from tests.support.pipeline import envelope

SECRET = "whsec_YnJlYWt3YXRlci10ZXN0LXNlY3JldC10aGUtbmV3LW9uZSEh"
PROVIDER_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def http(**fields: Any) -> dict[str, Any]:
    return {
        "destinations": {"crm": {"kind": "http", "url": "http://crm/", **fields}},
        "routes": [{"destinations": ["crm"]}],
    }


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("YnJlYWt3YXRlci10ZXN0LXNlY3JldC10aGUtbmV3LW9uZSEh", "secret is not whsec_ followed by base64"),
        ("whsec_not base64!", "secret is not whsec_ followed by base64"),
        ("whsec_c2hvcnQ=", "secret is shorter than 24 bytes after whsec_"),
        ("env:BW_TEST_UNSET_SECRET", "environment variable BW_TEST_UNSET_SECRET is not set"),
    ],
)
def test_a_signing_secret_that_is_not_a_standard_webhooks_secret_fails_at_start_naming_it(
    secret: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(pipeline=http(signing_secrets=[SECRET, secret]))
    assert f"pipeline.destinations.crm.http.signing_secrets.1: {message}" in str(info.value)
    assert secret.removeprefix("env:") not in str(info.value).replace("BW_TEST_UNSET_SECRET is", "")


def test_prod_refuses_an_unsigned_http_destination_and_elsewhere_it_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    prod: dict[str, Any] = {
        "environment": "prod",
        "signing": {"active_key_id": "k", "keys": {"k": "a-prod-key"}},
    }
    with pytest.raises(ConfigError, match=r"pipeline\.destinations\.crm\.signing_secrets: .* must be signed"):
        load_settings(**prod, pipeline=http())
    load_settings(**prod, pipeline=http(signing_secrets=[SECRET]))

    settings = load_settings(pipeline=http())
    with caplog.at_level(logging.WARNING, logger="streams.destinations"):
        OutboundDeliverer(settings.pipeline.destinations)
    [warning] = caplog.records
    assert "'crm'" in warning.getMessage() and "unsigned" in warning.getMessage()
    caplog.clear()
    signed = load_settings(pipeline=http(signing_secrets=[SECRET]))
    with caplog.at_level(logging.WARNING, logger="streams.destinations"):
        OutboundDeliverer(signed.pipeline.destinations)
    assert caplog.records == []


def test_each_attempt_is_signed_at_its_send_time_under_the_same_id(monkeypatch: pytest.MonkeyPatch) -> None:
    destination = HttpDestination(url="http://crm/", signing_secrets=(SECRET,))
    deliverer = OutboundDeliverer({"crm": destination})
    item = envelope("stripe", "evt_1")
    sent: list[dict[str, str]] = []
    for now in (1_700_000_000.2, 1_700_000_042.9):
        monkeypatch.setattr("time.time", lambda now=now: now)  # the send time, as the deliverer reads it
        sent.append(deliverer.headers(item.model_copy(update={"attempt": len(sent)}), destination, "crm"))
    first, second = sent
    assert (first["webhook-timestamp"], second["webhook-timestamp"]) == ("1700000000", "1700000042")
    assert first["webhook-id"] == second["webhook-id"] == webhook_id("stripe", "evt_1", "crm")
    assert first["webhook-signature"] != second["webhook-signature"]


def test_the_webhook_id_is_ascii_and_tells_events_and_destinations_apart() -> None:
    ids = {
        webhook_id("stripe", "evt_1", "crm"),
        webhook_id("stripe", "evt_1", "erp"),
        webhook_id("stripe", "evt_2", "crm"),
        webhook_id("github", "evt_1", "crm"),
        webhook_id("stripe", 'evt_1", "crm', ""),  # no join can make two identities one
        webhook_id("stripe", "évt:1\n", "crm"),
    }
    assert len(ids) == 6
    assert all(i.startswith("msg_") and i.isascii() and len(i) == 36 for i in ids)


def test_a_standard_webhooks_providers_headers_are_forwarded_renamed_and_a_batch_event_carries_none() -> None:
    body = b'{"type":"invoice.paid"}'
    theirs = {k.lower(): v for k, v in sign_standard(body, PROVIDER_SECRET, timestamp=1, msg_id="m1").items()}
    del theirs["content-type"]
    item = envelope("acme", "m1").model_copy(update={"headers": theirs, "body": body})
    for secrets in ((), (SECRET,)):  # webhook-* mean Breakwater's, whether it signs or not
        destination = HttpDestination(
            url="http://crm/",
            forward_provider_signature=True,
            signing_secrets=secrets,
        )
        headers = OutboundDeliverer({}).headers(item, destination, "crm")
        assert {k: headers[f"x-provider-{k}"] for k in theirs} == theirs
        assert headers.get("webhook-id") == (webhook_id("acme", "m1", "crm") if secrets else None)
    destination = HttpDestination(url="http://crm/", forward_provider_signature=True)
    stripe_item = envelope("stripe", "e").model_copy(update={"headers": {"stripe-signature": "t=1,v1=ab"}})
    assert OutboundDeliverer({}).headers(stripe_item, destination, "crm")["stripe-signature"] == "t=1,v1=ab"
    batch_item = stripe_item.model_copy(update={"batch_index": 0})  # SendGrid: the signature is the batch's
    assert "stripe-signature" not in OutboundDeliverer({}).headers(batch_item, destination, "crm")


def test_a_delivery_signed_with_two_secrets_verifies_with_either() -> None:
    old = "whsec_YnJlYWt3YXRlci10ZXN0LXNlY3JldC10aGUtb2xkLW9uZSEh"
    destination = HttpDestination(url="http://crm/", signing_secrets=(old, SECRET))
    item = envelope("stripe", "evt_1")
    headers = OutboundDeliverer({}).headers(item, destination, "crm")
    assert len(headers["webhook-signature"].split()) == 2
    for secret in (old, SECRET):
        assert Webhook(secret).verify(item.body, headers)


def test_event_headers_are_ascii_carry_the_edge_trace_and_leave_out_what_is_too_long() -> None:
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    item = envelope("stripe", "evt_é", "café").model_copy(update={"trace_parent": trace})
    headers = dict(event_headers(item))
    assert headers[EVENT_TYPE_HEADER] == b"caf%C3%A9" and headers[EVENT_ID_HEADER] == b"evt_%C3%A9"
    assert headers[TRACEPARENT_HEADER] == trace.encode()  # the edge's span: dispatch records none
    for bad in (None, "00-zz-b7ad6b7169203331-01", "00-" + "0" * 32 + "-b7ad6b7169203331-01", "é"):
        untraced = dict(event_headers(envelope("stripe", "evt_1").model_copy(update={"trace_parent": bad})))
        version, trace_id, span_id, _ = untraced[TRACEPARENT_HEADER].decode().split("-")
        assert version == "00" and len(trace_id) == 32 and trace_id != "0" * 32 and len(span_id) == 16
    long = envelope("stripe", "evt_1", "x" * (EVENT_HEADER_MAX_CHARS + 1))
    assert EVENT_TYPE_HEADER not in dict(event_headers(long))
    assert EVENT_ID_HEADER in dict(event_headers(long))


def test_a_forwarded_header_never_stands_in_for_one_http_or_breakwater_sends() -> None:
    """An envelope written by a gateway may carry any header: those travel under the prefix."""
    kept = {
        "idempotency-key": "forged",
        "Host": "evil",
        "x-breakwater-attempt": "9",
        "x-hub-signature-256": "s",
    }
    item = envelope("github", "d1").model_copy(update={"headers": kept})
    destination = HttpDestination(url="http://crm/", forward_provider_signature=True)
    headers = OutboundDeliverer({}).headers(item, destination, "crm")
    assert headers["x-hub-signature-256"] == "s"
    assert headers["x-provider-idempotency-key"] == "forged" and "idempotency-key" not in headers
    assert headers["x-provider-host"] == "evil" and "host" not in headers
    assert headers["x-breakwater-attempt"] == "1" and headers["x-provider-x-breakwater-attempt"] == "9"


def test_header_values_decode_back_to_the_value_even_with_a_percent() -> None:
    from urllib.parse import unquote

    from streams.destinations import header_safe

    for value in ("evt_café", "evt_caf%C3%A9", "a%2Fb", "plain:id/1", "100%"):
        encoded = header_safe(value)
        assert encoded.isascii() and encoded.isprintable() and unquote(encoded) == value
    assert header_safe("evt_café") != header_safe("evt_caf%C3%A9")
    assert header_safe("plain:id/1") == "plain:id/1"
