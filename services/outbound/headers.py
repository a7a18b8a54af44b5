"""Read what an API says about its own limits, in the dialects APIs actually use.

- ``Retry-After``: delta-seconds or an HTTP date (RFC 9110 §10.2.3).
- ``X-RateLimit-Limit/-Remaining/-Reset`` and ``X-Rate-Limit-*`` (GitHub, Twitter, most vendors);
  ``-Reset`` may be seconds from now or a Unix time.
- ``RateLimit-Limit/-Remaining/-Reset`` (IETF draft up to -07).
- ``RateLimit: "default";r=50;t=30`` with ``RateLimit-Policy: "default";q=100;w=60`` (IETF draft -08+),
  and the older single-header form ``RateLimit: limit=100, remaining=50, reset=30``.

When several policies are given, the one with the least room wins.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final

import httpx

_PREFIXES: Final = ("x-ratelimit-", "x-rate-limit-", "ratelimit-")
_EPOCH_THRESHOLD: Final = 1_000_000_000.0
"""A reset value this large is a Unix time, not a number of seconds."""


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """The API's own view of our quota; ``None`` where it said nothing."""

    limit: float | None = None
    remaining: float | None = None
    reset_after: float | None = None
    """Seconds until the quota refills."""

    @property
    def room(self) -> float | None:
        """Share of the quota left (0..1), or ``None`` if unknown."""
        if self.limit is None or self.remaining is None or self.limit <= 0:
            return None
        return max(0.0, min(1.0, self.remaining / self.limit))

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    head = value.split(",", 1)[0].split(";", 1)[0]  # "100, 100;w=60" -> "100"
    try:
        number = float(head.strip().strip('"'))
    except ValueError:
        return None
    return number if number >= 0 else None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, never negative; ``None`` if absent or unreadable."""
    if value is None or not value.strip():
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _reset_seconds(value: float | None, now: float) -> float | None:
    if value is None:
        return None
    if value >= _EPOCH_THRESHOLD:
        return max(0.0, value - now)
    return value


def _params(item: str) -> dict[str, str]:
    """``"name";r=5;t=2`` or ``limit=5`` -> {"r": "5", "t": "2"} / {"limit": "5"}."""
    params: dict[str, str] = {}
    for part in item.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep:
            params[key.strip().lower()] = value.strip()
    return params


def _structured(headers: httpx.Headers) -> list[RateLimitInfo]:
    """Policies from the IETF ``RateLimit`` / ``RateLimit-Policy`` headers."""
    quotas: dict[str, float] = {}
    for item in headers.get("ratelimit-policy", "").split(","):
        name = item.split(";", 1)[0].strip().strip('"')
        if (quota := _number(_params(item).get("q"))) is not None:
            quotas[name] = quota
    raw = headers.get("ratelimit")
    if raw is None:
        return []
    combined = _params(raw.replace(",", ";"))
    if {"limit", "remaining", "reset"} & combined.keys():  # draft -07 single-header form
        return [
            RateLimitInfo(
                limit=_number(combined.get("limit")),
                remaining=_number(combined.get("remaining")),
                reset_after=_number(combined.get("reset")),
            )
        ]
    infos = []
    for item in raw.split(","):
        name = item.split(";", 1)[0].strip().strip('"')
        params = _params(item)
        infos.append(
            RateLimitInfo(
                limit=quotas.get(name),
                remaining=_number(params.get("r")),
                reset_after=_number(params.get("t")),
            )
        )
    return infos


def _least_room(infos: list[RateLimitInfo]) -> RateLimitInfo | None:
    def key(info: RateLimitInfo) -> tuple[float, float]:
        room = info.room
        return (room if room is not None else 2.0, info.remaining if info.remaining is not None else 1e18)

    useful = [i for i in infos if i.remaining is not None or i.limit is not None]
    return min(useful, key=key) if useful else None


def parse_rate_limit(headers: httpx.Headers, *, now: float | None = None) -> RateLimitInfo | None:
    """The most restrictive quota the headers describe, or ``None`` when they describe none."""
    # One pass over the raw names first: most responses carry no rate-limit header at all, and
    # httpx.Headers.get is a linear scan, too slow to repeat a dozen times on every call.
    names = [name.lower() for name, _ in headers.raw]
    if not any(b"ratelimit" in name or b"rate-limit" in name for name in names):
        return None
    current = time.time() if now is None else now
    infos = _structured(headers)
    for prefix in _PREFIXES:
        limit = _number(headers.get(prefix + "limit"))
        remaining = _number(headers.get(prefix + "remaining"))
        reset = _number(headers.get(prefix + "reset"))
        if limit is not None or remaining is not None:
            infos.append(RateLimitInfo(limit, remaining, _reset_seconds(reset, current)))
    return _least_room(infos)
