"""Provider signature verifiers for the edge: one module per provider, one entry point.

Example (at start-up, then per request)::

    verifier = build_verifier(name="stripe", kind="stripe", settings=provider_settings, http=client)
    events = await verifier.verify(body=raw, headers=lowercased_headers, now=time.time())

``verify`` returns one :class:`VerifiedEvent` per provider event (a SendGrid POST may hold many) or
raises :class:`services.errors.BadSignature`, :class:`~services.errors.StaleTimestamp` or
:class:`~services.errors.MalformedRequest` (PayPal may also raise
:class:`~services.errors.Overloaded` when PayPal's certificate host cannot be reached).
"""

from __future__ import annotations

import httpx

from schemas.providers import KINDS
from services.config import ConfigError, ProviderSettings
from services.edge.verifiers.base import VerifiedEvent, Verifier
from services.edge.verifiers.github import GitHubVerifier
from services.edge.verifiers.paypal import PayPalVerifier
from services.edge.verifiers.sendgrid import SendGridVerifier
from services.edge.verifiers.shopify import ShopifyVerifier
from services.edge.verifiers.standard import StandardWebhooksVerifier
from services.edge.verifiers.stripe import StripeVerifier

__all__ = [
    "GitHubVerifier",
    "PayPalVerifier",
    "SendGridVerifier",
    "ShopifyVerifier",
    "StandardWebhooksVerifier",
    "StripeVerifier",
    "VerifiedEvent",
    "Verifier",
    "build_verifier",
]


def build_verifier(
    name: str, kind: str, settings: ProviderSettings, http: httpx.AsyncClient | None = None
) -> Verifier:
    """The verifier for provider ``name`` of ``kind``; call once at start-up.

    Raises :class:`services.config.ConfigError` (naming the field) for an unknown kind, a secret
    that cannot be used (e.g. a SendGrid key that is not P-256) or PayPal without ``http``.
    """
    if kind == "stripe":
        return StripeVerifier(name, settings)
    if kind == "github":
        return GitHubVerifier(name, settings)
    if kind == "shopify":
        return ShopifyVerifier(name, settings)
    if kind == "sendgrid":
        return SendGridVerifier(name, settings)
    if kind == "standard":
        return StandardWebhooksVerifier(name, settings)
    if kind == "paypal":
        if http is None:
            raise ConfigError(f"providers.{name}: PayPal needs an HTTP client to fetch certificates")
        return PayPalVerifier(name, settings, http)
    raise ConfigError(f"providers.{name}.kind: unknown kind {kind!r}, expected one of {', '.join(KINDS)}")
