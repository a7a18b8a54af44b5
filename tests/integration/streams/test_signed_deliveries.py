"""Signed deliveries and event-record headers, on the real broker, a real HTTP server and the real edge.

What a destination checks is checked with the libraries it would use: the official ``standardwebhooks``
SDK for Breakwater's own signature (with either secret of a rotation), Stripe's SDK and the
``standardwebhooks`` SDK again for the providers' forwarded signatures. The headers of the records on
``webhooks.events`` (and a route topic) are read back from the broker.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import stripe
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from schemas.headers import (
    ENVELOPE_ID_HEADER,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    PROVIDER_HEADER,
    TRACEPARENT_HEADER,
)
from services.edge.verifiers.signers import sign_standard, sign_stripe
from streams.destinations import webhook_id
from tests.support.edge import SECRETS, SIGNING_KEY, edge_settings, running_edge
from tests.support.http_server import Recorded, ScriptedServer, fail_times, serve_scripted
from tests.support.pipeline import (
    CommittedReader,
    create_topics,
    envelope,
    pipeline_config,
    produce,
    running_worker,
    settings_of,
)

pytestmark = pytest.mark.kafka

OLD = "whsec_YnJlYWt3YXRlci10ZXN0LXNlY3JldC10aGUtb2xkLW9uZSEh"
NEW = "whsec_YnJlYWt3YXRlci10ZXN0LXNlY3JldC10aGUtbmV3LW9uZSEh"
NOBODY = "whsec_YnJlYWt3YXRlci10ZXN0LXNlY3JldC1vZi1ub2JvZHkhISEh"
MIRROR = "whsec_YnJlYWt3YXRlci10ZXN0LXNlY3JldC1vZi10aGUtbWlycm9y"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def by_key(requests: list[Recorded]) -> dict[str, list[Recorded]]:
    grouped: dict[str, list[Recorded]] = defaultdict(list)
    for request in requests:
        grouped[request.headers["idempotency-key"]].append(request)
    return grouped


def delivered_keys(server: ScriptedServer, path: str, statuses: dict[int, int]) -> set[str]:
    """Idempotency keys whose call on ``path`` was answered 2xx (``statuses``: call index -> status)."""
    calls = [r for r in server.requests if r.path == path]
    return {r.headers["idempotency-key"] for i, r in enumerate(calls) if statuses.get(i, 200) == 200}


async def test_deliveries_verify_with_the_sdk_under_either_secret_and_keep_their_id_across_retries(
    config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_WEBHOOK_SECRET_OLD", OLD)  # secret references, as a deployment writes them
    monkeypatch.setenv("CRM_WEBHOOK_SECRET", NEW)
    failures = 5
    async with serve_scripted() as server:
        server.route("/crm", fail_times(failures, status=503))  # the first calls fail: retried via a tier
        crm = {
            "kind": "http",
            "url": f"{server.url}/crm",
            "signing_secrets": ["env:CRM_WEBHOOK_SECRET_OLD", "env:CRM_WEBHOOK_SECRET"],
        }
        other = {"kind": "http", "url": f"{server.url}/other", "signing_secrets": [NEW]}
        settings = settings_of(
            config,
            destinations={"crm": crm, "other": other},
            routes=[{"destinations": ["crm", "other"]}],
        )
        await create_topics(settings)
        sent = [envelope("stripe", f"evt_{i}") for i in range(20)]
        await produce(settings, sent)
        keys = {e.key for e in sent}
        fails = dict.fromkeys(range(failures), 503)
        async with running_worker(settings):
            await server.wait_for(
                lambda: (
                    delivered_keys(server, "/crm", fails) == keys
                    and delivered_keys(server, "/other", {}) == keys
                ),
                timeout=60,
            )
        crm_calls = by_key([r for r in server.requests if r.path == "/crm"])
        other_calls = by_key([r for r in server.requests if r.path == "/other"])

    for request in [r for calls in [*crm_calls.values(), *other_calls.values()] for r in calls]:
        for secret in (NEW, OLD) if request.path == "/crm" else (NEW,):
            assert Webhook(secret).verify(request.body, request.headers) == json.loads(request.body)
        with pytest.raises(WebhookVerificationError, match="No matching signature"):
            Webhook(NOBODY).verify(request.body, request.headers)
        assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 120  # the send time
    assert all(
        len(r.headers["webhook-signature"].split()) == 2 for calls in crm_calls.values() for r in calls
    )
    retried = [calls for calls in crm_calls.values() if len(calls) > 1]
    assert len(retried) == failures  # each failed call's event came back once from the tier
    for key, calls in crm_calls.items():
        provider, event_id = key.split(":", 1)
        assert {r.headers["webhook-id"] for r in calls} == {webhook_id(provider, event_id, "crm")}
        assert {r.headers["webhook-id"] for r in other_calls[key]} == {
            webhook_id(provider, event_id, "other")
        }
    ids = [calls[0].headers["webhook-id"] for calls in [*crm_calls.values(), *other_calls.values()]]
    assert len(set(ids)) == 2 * len(keys)  # one id per event and destination


def stripe_webhook(event_type: str, event_id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"id": event_id, "object": "event", "type": event_type, "data": {}}).encode()
    return body, sign_stripe(body, SECRETS["stripe"], int(time.time()))


def standard_webhook(event_id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"type": "invoice.paid", "data": {"invoice": "inv_1"}}).encode()
    return body, sign_standard(body, SECRETS["standard"], timestamp=int(time.time()), msg_id=event_id)


async def test_provider_signatures_are_forwarded_and_event_records_carry_their_identity_and_trace(
    kafka_bootstrap: str, unique: Callable[[str], str], tmp_path: Path
) -> None:
    """Through the real edge: what a provider signed reaches the destination verifiable by its SDK."""
    async with serve_scripted() as server:
        mirror = {
            "kind": "http",
            "url": f"{server.url}/mirror",
            "signing_secrets": [MIRROR],
            "forward_provider_signature": True,
        }
        plain = {"kind": "http", "url": f"{server.url}/plain", "signing_secrets": [MIRROR]}
        config = pipeline_config(
            kafka_bootstrap,
            unique("signed"),
            tmp_path / "state",
            destinations={
                "events": {"kind": "kafka"},
                "audit": {"kind": "kafka", "topic": "webhooks.audit"},
                "mirror": mirror,
                "plain": plain,
            },
            routes=[{"destinations": ["events", "audit", "mirror", "plain"]}],
        )
        providers = {name: {"secrets": [SECRETS[name]]} for name in ("stripe", "standard")}
        config["providers"] = providers
        config["signing"] = {"active_key_id": "t1", "keys": {"t1": SIGNING_KEY.decode()}}
        settings = settings_of(config)
        topics = await create_topics(settings)
        posts = {
            "stripe:evt_paid": ("stripe", *stripe_webhook("payment_intent.succeeded", "evt_paid")),
            "stripe:evt_café": ("stripe", *stripe_webhook("café.créé", "evt_café")),
            "standard:msg_std_1": ("standard", *standard_webhook("msg_std_1")),
        }
        edge = edge_settings(kafka_bootstrap, providers=providers)
        async with (
            running_edge(edge, topics.inbound) as running,
            running_worker(settings),
            CommittedReader(settings.kafka.servers, topics.name("webhooks.events")) as events,
            CommittedReader(settings.kafka.servers, topics.name("webhooks.audit")) as audit,
        ):
            async with httpx.AsyncClient(base_url=running.url) as client:
                for provider, body, headers in posts.values():
                    headers = {**headers, "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
                    answer = await client.post(f"/webhooks/{provider}", content=body, headers=headers)
                    assert answer.status_code == 202, answer.text
            await server.wait_for(lambda: server.calls() >= 2 * len(posts), timeout=60)
            await events.until(lambda r: len(r.records) >= len(posts), 30, "event records")
            await audit.until(lambda r: len(r.records) >= len(posts), 30, "route topic records")

    mirrored = {r.headers["idempotency-key"]: r for r in server.requests if r.path == "/mirror"}
    plain_calls = [r for r in server.requests if r.path == "/plain"]
    assert set(mirrored) == {"stripe:evt_paid", "stripe:evt_caf%C3%A9", "standard:msg_std_1"}
    for request in mirrored.values():
        assert Webhook(MIRROR).verify(request.body, request.headers)  # Breakwater's own signature
    for key in ("stripe:evt_paid", "stripe:evt_caf%C3%A9"):
        request = mirrored[key]
        event = stripe.Webhook.construct_event(
            request.body, request.headers["stripe-signature"], SECRETS["stripe"]
        )
        assert event["id"] == key.split(":")[1].replace("%C3%A9", "é")
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(request.body, request.headers["stripe-signature"], "whsec_wrong")
    assert mirrored["stripe:evt_caf%C3%A9"].headers["x-breakwater-event-type"] == "caf%C3%A9.cr%C3%A9%C3%A9"
    standard = mirrored["standard:msg_std_1"]
    provider_headers = {
        name.removeprefix("x-provider-"): value
        for name, value in standard.headers.items()
        if name.startswith("x-provider-webhook-")
    }
    assert provider_headers["webhook-id"] == "msg_std_1"  # the provider's own, renamed beside ours
    assert standard.headers["webhook-id"] == webhook_id("standard", "msg_std_1", "mirror")
    assert Webhook(SECRETS["standard"]).verify(standard.body, provider_headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRETS["standard"]).verify(standard.body, standard.headers)  # ours is not theirs
    for request in plain_calls:  # forwarding is per destination
        assert not {"stripe-signature", "x-provider-webhook-signature"} & request.headers.keys()

    for reader in (events, audit):
        assert len(reader.records) == len(posts)
        for record in reader.records:
            value = json.loads(record.value or b"")
            meta = dict(record.headers)
            assert set(meta) == {
                TRACEPARENT_HEADER,
                PROVIDER_HEADER,
                EVENT_TYPE_HEADER,
                EVENT_ID_HEADER,
                ENVELOPE_ID_HEADER,
            }
            assert meta[PROVIDER_HEADER].decode() == value["provider"]
            assert meta[ENVELOPE_ID_HEADER].decode() == value["id"]
            assert unquote(meta[EVENT_ID_HEADER].decode()) == value["event_id"]  # ASCII, percent-encoded
            assert unquote(meta[EVENT_TYPE_HEADER].decode()) == value["event_type"]
            version, trace_id, span_id, flags = meta[TRACEPARENT_HEADER].decode().split("-")
            assert (version, trace_id, flags) == ("00", TRACE_ID, "01")  # the provider's trace goes on
            assert span_id != "00f067aa0ba902b7"  # under the edge's span, not the caller's
    types = {dict(r.headers)[EVENT_TYPE_HEADER] for r in events.records}
    assert types == {b"payment_intent.succeeded", b"caf%C3%A9.cr%C3%A9%C3%A9", b"invoice.paid"}
    assert {dict(r.headers)[EVENT_ID_HEADER] for r in events.records} == {
        b"evt_paid",
        b"evt_caf%C3%A9",
        b"msg_std_1",
    }
