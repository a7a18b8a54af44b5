"""GitHub: ``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the raw body.

GitHub sends no timestamp, so there is no freshness check, and the signature does not cover
``X-GitHub-Delivery``: replays are caught by dedup on a digest of the body (``providers.X.dedup``,
streams/dedup_store.py), a resend with its delivery id as a duplicate. A webhook may be
``application/json`` or ``application/x-www-form-urlencoded`` with the JSON in a ``payload`` field;
the signature covers the raw body either way. The event type is ``X-GitHub-Event``, plus
``.{action}`` when the payload has one (``issues.opened``), so routes can tell actions apart.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from services.config import ProviderSettings
from services.edge.verifiers._common import (
    any_match,
    id_header,
    json_object,
    secret_values,
    signature_header,
)
from services.edge.verifiers.base import VerifiedEvent
from services.errors import BadSignature, MalformedRequest

HEADER = "X-Hub-Signature-256"
FORM = "application/x-www-form-urlencoded"


def payload_of(body: bytes, content_type: str) -> dict[str, Any]:
    """The JSON payload, from a JSON body or from the ``payload`` field of a form body."""
    if content_type.split(";", 1)[0].strip().lower() != FORM:
        return json_object(body)
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=16)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedRequest(f"form body is malformed: {exc}") from None
    values = fields.get("payload")
    if not values or len(values) != 1:
        raise MalformedRequest("form body needs exactly one 'payload' field")
    return json_object(values[0].encode("utf-8"), "payload field")


class GitHubVerifier:
    """Verifies GitHub webhook signatures against any of the configured webhook secrets."""

    kind: str = "github"
    content_types: frozenset[str] = frozenset({"application/json", FORM})
    envelope_headers: tuple[str, ...] = (
        "x-hub-signature-256",
        "x-github-delivery",
        "x-github-event",
        "x-github-hook-id",
    )

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        self.name = name
        self._keys = [secret.encode("utf-8") for secret in secret_values(name, settings)]

    async def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> list[VerifiedEvent]:
        scheme, sep, digest = signature_header(headers, HEADER).partition("=")
        if not sep or scheme.strip().lower() != "sha256":
            raise BadSignature(f"{HEADER} header is malformed: expected 'sha256=<hex>'")
        received = digest.strip().lower().encode("utf-8")
        expected = [hmac.new(key, body, hashlib.sha256).hexdigest().encode("ascii") for key in self._keys]
        if not any_match(expected, [received]):
            raise BadSignature(f"{HEADER} does not match a configured secret")
        delivery = id_header(headers, "X-GitHub-Delivery")
        event_type = id_header(headers, "X-GitHub-Event")
        payload = payload_of(body, headers.get("content-type", ""))
        action = payload.get("action")
        if isinstance(action, str) and action:
            event_type = f"{event_type}.{action}"
        return [VerifiedEvent(event_id=delivery, event_type=event_type, occurred_at=None, body=body)]
