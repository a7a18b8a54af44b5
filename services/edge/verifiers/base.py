"""What every provider verifier gives the edge: verified events, and the shape of a verifier.

A verifier turns one raw HTTP request (body bytes + lowercased headers) into one or more
:class:`VerifiedEvent`, or raises a :class:`services.errors.RejectedRequest` subclass saying why not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

__all__ = ["VerifiedEvent", "Verifier"]


@dataclass(frozen=True, slots=True)
class VerifiedEvent:
    """One provider event whose signature checked out."""

    event_id: str
    event_type: str
    occurred_at: datetime | None
    """Tz-aware UTC, when the provider says when the event happened."""
    body: bytes
    """The exact bytes to carry: the raw body, or for a SendGrid batch one event's JSON."""
    batch_index: int | None = None
    """Position in a SendGrid batch; None for providers that send one event per request."""


@runtime_checkable
class Verifier(Protocol):
    """Checks one provider's signatures. Built once at start-up by :func:`build_verifier`."""

    kind: str
    content_types: frozenset[str]
    """Media types the provider sends (lowercase, no parameters); the edge answers 415 for others."""
    envelope_headers: tuple[str, ...]
    """Lowercase header names to keep in the envelope, so the signature can be re-verified later."""

    async def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> list[VerifiedEvent]:
        """Return the events in ``body`` or raise BadSignature / StaleTimestamp / MalformedRequest."""
