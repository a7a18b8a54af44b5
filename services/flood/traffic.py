"""Correctly signed webhooks for the flood: fresh events, resends, and resends hours late.

Providers resend what they think was not received; a resend carries the same event id, so the
pipeline must drop it. Stripe and Standard Webhooks sign a timestamp, so a resend hours late is
refused by the edge with 401 ``stale_timestamp``; that is the expected answer, not a failure.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass

from services.edge.verifiers.signers import sign_github, sign_shopify, sign_standard, sign_stripe
from services.flood.scenario import PROVIDERS, SECRETS, STALE_KINDS, Scenario


@dataclass(frozen=True)
class Webhook:
    """One request to send, and what the flood expects to learn from its answer."""

    provider: str
    event_id: str
    event_type: str
    """As the edge will see it (GitHub's is ``{event}.{action}``)."""
    kind: str
    """``new``, ``duplicate`` or ``stale``."""
    body: bytes
    headers: dict[str, str]

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.event_id}"


def _body(provider: str, event_id: str, event_type: str, now: int) -> bytes:
    if provider == "stripe":
        data: object = {
            "id": event_id,
            "object": "event",
            "created": now,
            "type": event_type,
            "livemode": False,
            "data": {"object": {"id": f"pi_{event_id[-12:]}", "amount": 2000, "currency": "usd"}},
        }
    elif provider == "github":
        data = {
            "action": "published" if event_type.startswith("release") else "opened",
            # GitHub's bodies differ per event (the issue, the release, the pushed commit): Breakwater
            # dedups GitHub by body, since the delivery id in the header is not signed
            "number": int(event_id.replace("-", "")[-8:], 16),
            "repository": {"id": 1296269, "full_name": "octocat/Hello-World"},
            "sender": {"login": "octocat", "id": 1},
        }
    elif provider == "shopify":
        data = {"id": int(event_id[-8:], 16), "currency": "USD", "total_price": "19.99"}
    else:
        data = {"type": event_type, "timestamp": now, "data": {"invoice_id": f"inv_{event_id[-12:]}"}}
    return json.dumps(data, separators=(",", ":")).encode()


def sign(provider: str, event_id: str, event_type: str, timestamp: int) -> tuple[bytes, dict[str, str]]:
    """Body and headers exactly as the provider would send them at ``timestamp``."""
    body = _body(provider, event_id, event_type, timestamp)
    secret = SECRETS[provider]
    if provider == "stripe":
        return body, sign_stripe(body, secret, timestamp)
    if provider == "github":
        return body, sign_github(body, secret, event=event_type.split(".", 1)[0], delivery=event_id)
    if provider == "shopify":
        return body, sign_shopify(body, secret, topic=event_type, webhook_id=event_id)
    return body, sign_standard(body, secret, timestamp=timestamp, msg_id=event_id)


def edge_event_type(provider: str, header_type: str) -> str:
    """The type the edge records: GitHub appends the body's ``action``."""
    if provider == "github":
        return f"{header_type}.{'published' if header_type == 'release' else 'opened'}"
    return header_type


class Traffic:
    """Draws the next webhook: new (weighted by provider and type), a duplicate, or a stale resend."""

    def __init__(self, scenario: Scenario, *, seed: int | None = None, history: int = 5000) -> None:
        self._scenario = scenario
        self._rng = random.Random(scenario.seed if seed is None else seed)
        self._history: list[tuple[str, str, str]] = []
        self._stale_history: list[tuple[str, str, str]] = []
        self._limit = history
        self._types = {
            provider: (list(types), list(types.values())) for provider, types in scenario.event_types.items()
        }

    def next(self, now: float | None = None) -> Webhook:
        stamp = int(time.time() if now is None else now)
        rng = self._rng
        if self._history and rng.random() < self._scenario.duplicate_ratio:
            if self._stale_history and rng.random() < self._scenario.stale_share:
                provider, event_id, event_type = rng.choice(self._stale_history)
                late = stamp - self._scenario.stale_age_seconds - rng.randint(0, 3 * 3600)
                body, headers = sign(provider, event_id, event_type, late)
                seen = edge_event_type(provider, event_type)
                return Webhook(provider, event_id, seen, "stale", body, headers)
            provider, event_id, event_type = rng.choice(self._history)
            body, headers = sign(provider, event_id, event_type, stamp)
            return Webhook(
                provider, event_id, edge_event_type(provider, event_type), "duplicate", body, headers
            )
        provider = rng.choice(PROVIDERS)
        names, weights = self._types[provider]
        header_type = rng.choices(names, weights)[0]
        event_type = edge_event_type(provider, header_type)
        event_id = self._event_id(provider)
        self._remember((provider, event_id, header_type))
        body, headers = sign(provider, event_id, header_type, stamp)
        return Webhook(provider, event_id, event_type, "new", body, headers)

    def _event_id(self, provider: str) -> str:
        token = uuid.UUID(int=self._rng.getrandbits(128)).hex
        return {"stripe": f"evt_{token}", "standard": f"msg_{token}"}.get(provider, str(uuid.UUID(token)))

    def _remember(self, item: tuple[str, str, str]) -> None:
        for pool in (self._history, *([self._stale_history] if item[0] in STALE_KINDS else [])):
            if len(pool) >= self._limit:
                pool[self._rng.randrange(len(pool))] = item
            else:
                pool.append(item)
