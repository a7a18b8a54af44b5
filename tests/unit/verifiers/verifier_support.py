"""Helpers shared by the verifier tests (import as tests.unit.verifiers.verifier_support)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx

from services.config import ProviderSettings
from services.edge.verifiers import VerifiedEvent, build_verifier

NOW = 1_700_000_000  # 2023-11-14T22:13:20Z


def provider(kind: str, *secrets: str, **fields: Any) -> ProviderSettings:
    return ProviderSettings(kind=kind, secrets=list(secrets), **fields)


def lower(headers: Mapping[str, str]) -> dict[str, str]:
    """What the edge hands a verifier: header names lowercased."""
    return {name.lower(): value for name, value in headers.items()}


def verify_sync(
    kind: str,
    settings: ProviderSettings,
    body: bytes,
    headers: Mapping[str, str],
    now: float = NOW,
    http: httpx.AsyncClient | None = None,
) -> list[VerifiedEvent]:
    """Build and run a verifier outside an event loop (for hypothesis tests)."""
    verifier = build_verifier(name=kind, kind=kind, settings=settings, http=http)
    return asyncio.run(verifier.verify(body=body, headers=lower(headers), now=now))
