"""Sign a body the way each provider does, returning the headers to send with it.

The mirror image of the verifiers, for tests, the ``breakwater sample`` CLI and the load
generator. Header names use the providers' own spelling; lowercase them before calling a verifier
directly. ``sample_body(kind)`` gives a small realistic payload with a fresh event id.

>>> body = sample_body("stripe", event_id="evt_1")
>>> headers = sign_stripe(body, "whsec_test", timestamp=1700000000)
>>> headers["Stripe-Signature"].startswith("t=1700000000,v1=")
True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from services.edge.verifiers.paypal import ALGORITHM, signed_message
from services.standard_webhooks import decode_secret, signed_headers

__all__ = [
    "generate_paypal_certificate",
    "generate_sendgrid_key",
    "sample_body",
    "sign_github",
    "sign_paypal",
    "sign_sendgrid",
    "sign_shopify",
    "sign_standard",
    "sign_stripe",
]

JSON = "application/json"


def sign_stripe(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """``Stripe-Signature: t=…,v1=…``: HMAC-SHA256 hex of ``f"{t}.{body}"`` with the whole secret."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": JSON, "Stripe-Signature": f"t={timestamp},v1={digest}"}


def sign_github(
    body: bytes,
    secret: str,
    *,
    event: str = "issues",
    delivery: str | None = None,
    content_type: str = JSON,
) -> dict[str, str]:
    """``X-Hub-Signature-256: sha256=<hex>`` of the body, plus the delivery id and event name."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def sign_shopify(
    body: bytes,
    secret: str,
    *,
    topic: str = "orders/create",
    webhook_id: str | None = None,
    triggered_at: datetime | None = None,
    shop_domain: str = "breakwater-demo.myshopify.com",
) -> dict[str, str]:
    """``X-Shopify-Hmac-Sha256``: base64 HMAC-SHA256 of the body, plus id, topic and shop headers."""
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    when = triggered_at or datetime.now(UTC)
    return {
        "Content-Type": JSON,
        "X-Shopify-Hmac-Sha256": digest,
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": when.isoformat().replace("+00:00", "Z"),
        "X-Shopify-Shop-Domain": shop_domain,
        "X-Shopify-Api-Version": "2025-01",
    }


def sign_standard(
    body: bytes, secret: str, *, timestamp: int, msg_id: str | None = None, prefix: str = "webhook"
) -> dict[str, str]:
    """Standard Webhooks headers (``prefix="svix"`` for Svix's names) for a ``whsec_`` secret."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    keys = [decode_secret(secret)]
    return {"Content-Type": JSON, **signed_headers(keys, msg_id, timestamp, body, prefix=prefix)}


def sign_sendgrid(body: bytes, private_key: ec.EllipticCurvePrivateKey, timestamp: int) -> dict[str, str]:
    """SendGrid's ECDSA P-256 / SHA-256 signature (base64 DER) of ``timestamp + body``."""
    signature = private_key.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "Content-Type": JSON,
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": str(timestamp),
    }


def sign_paypal(
    body: bytes,
    private_key: rsa.RSAPrivateKey,
    *,
    cert_url: str,
    webhook_id: str,
    transmission_id: str | None = None,
    transmission_time: datetime | None = None,
) -> dict[str, str]:
    """PayPal's ``SHA256withRSA`` signature of ``id|time|webhook_id|crc32(body)`` and its headers."""
    transmission_id = transmission_id or str(uuid.uuid4())
    when = (transmission_time or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    message = signed_message(transmission_id, when, webhook_id, body)
    signature = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return {
        "Content-Type": JSON,
        "PAYPAL-TRANSMISSION-ID": transmission_id,
        "PAYPAL-TRANSMISSION-TIME": when,
        "PAYPAL-TRANSMISSION-SIG": base64.b64encode(signature).decode(),
        "PAYPAL-CERT-URL": cert_url,
        "PAYPAL-AUTH-ALGO": ALGORITHM,
    }


def generate_sendgrid_key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A new P-256 key pair: the private key, and the public key as SendGrid shows it (base64 DER)."""
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, base64.b64encode(der).decode()


def generate_paypal_certificate(
    *,
    common_name: str = "messageverificationcerts.paypal.com",
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key: rsa.RSAPrivateKey | None = None,
) -> tuple[rsa.RSAPrivateKey, bytes]:
    """A self-signed RSA certificate (PEM) standing in for PayPal's, valid for a year by default."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    start = not_before or datetime.now(UTC) - timedelta(minutes=5)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after or start + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sample(kind: str, event_id: str, now: int, count: int) -> Any:
    if kind == "stripe":
        return {
            "id": event_id,
            "object": "event",
            "api_version": "2024-06-20",
            "created": now,
            "type": "payment_intent.succeeded",
            "livemode": False,
            "pending_webhooks": 1,
            "data": {
                "object": {
                    "id": f"pi_{uuid.uuid4().hex[:24]}",
                    "object": "payment_intent",
                    "amount": 2000,
                    "currency": "usd",
                    "status": "succeeded",
                }
            },
        }
    # GitHub and Shopify are deduplicated by body (their ids are unsigned headers): each sample differs
    if kind == "github":  # event "issues" (see sign_github); the id travels in X-GitHub-Delivery
        issue = uuid.uuid4().int % 1_000_000
        return {
            "action": "opened",
            "issue": {"number": issue, "title": "Found a bug", "state": "open", "user": {"login": "octocat"}},
            "repository": {"id": 1296269, "full_name": "octocat/Hello-World"},
            "sender": {"login": "octocat", "id": 1},
        }
    if kind == "shopify":  # topic "orders/create"; the id travels in X-Shopify-Webhook-Id
        return {
            "id": uuid.uuid4().int % 10**18,
            "email": "jon@example.com",
            "created_at": _iso(now),
            "currency": "USD",
            "total_price": "19.99",
            "line_items": [{"id": 866550311766439020, "title": "IPod Nano - 8GB", "quantity": 1}],
        }
    if kind == "sendgrid":
        return [
            {
                "email": f"user{index}@example.com",
                "timestamp": now,
                "event": "delivered",
                "sg_event_id": event_id if count == 1 else f"{event_id}-{index}",
                "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
                "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
                "response": "250 OK",
            }
            for index in range(count)
        ]
    if kind == "paypal":
        return {
            "id": event_id,
            "event_version": "1.0",
            "create_time": _iso(now),
            "resource_type": "capture",
            "event_type": "PAYMENT.CAPTURE.COMPLETED",
            "summary": "Payment completed for $ 19.99 USD",
            "resource": {"id": "42311647XV020574X", "status": "COMPLETED", "amount": {"value": "19.99"}},
        }
    if kind == "standard":  # the id travels in webhook-id
        return {
            "type": "invoice.paid",
            "timestamp": _iso(now),
            "data": {"invoice_id": f"inv_{uuid.uuid4().hex[:12]}", "amount": 1999, "currency": "usd"},
        }
    raise ValueError(f"unknown provider kind {kind!r}")


def sample_body(kind: str, *, event_id: str | None = None, now: float | None = None, count: int = 1) -> bytes:
    """A minimal realistic payload for ``kind``; ``count`` events for SendGrid's batches.

    Without ``event_id`` each call makes a fresh one, so repeated samples are not deduplicated.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    prefixes = {"stripe": "evt_", "sendgrid": "sg_", "paypal": "WH-"}
    event_id = event_id or f"{prefixes.get(kind, '')}{uuid.uuid4().hex}"
    when = int(time.time() if now is None else now)
    return json.dumps(_sample(kind, event_id, when, count), separators=(",", ":")).encode()
