"""Checks that several verifiers share: headers, freshness, JSON, constant-time matching, secrets.

Error messages name what was wrong and never include a secret or a signature value.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from schemas.payload import MalformedPayload, parse_json
from services.config import ConfigError, ProviderSettings
from services.errors import BadSignature, MalformedRequest, StaleTimestamp


def signature_header(headers: Mapping[str, str], name: str) -> str:
    """A header the signature depends on; missing or blank means BadSignature (401)."""
    value = headers.get(name.lower(), "").strip()
    if not value:
        raise BadSignature(f"missing {name} header")
    return value


def id_header(headers: Mapping[str, str], *names: str) -> str:
    """The first present header of ``names`` that names the event; none means MalformedRequest (400)."""
    for name in names:
        value = headers.get(name.lower(), "").strip()
        if value:
            return value
    raise MalformedRequest(f"missing {' or '.join(names)} header")


def check_fresh(timestamp: float, now: float, tolerance: int) -> None:
    """Reject a timestamp more than ``tolerance`` seconds before or after ``now`` (replays, bad clocks)."""
    age = now - timestamp
    if age > tolerance:
        raise StaleTimestamp(f"timestamp {timestamp:.0f} is {age:.0f} s old, tolerance {tolerance} s")
    if -age > tolerance:
        raise StaleTimestamp(
            f"timestamp {timestamp:.0f} is {-age:.0f} s in the future, tolerance {tolerance} s"
        )


def parse_unix_seconds(value: str, header: str) -> int:
    """An integer Unix timestamp from a signed header; anything else is a malformed signature."""
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise BadSignature(f"{header} is not a Unix timestamp in seconds")
    return int(value)


def any_match(expected: Iterable[bytes], received: Iterable[bytes]) -> bool:
    """True when any expected digest equals any received one; every pair is compared in constant time."""
    received = list(received)
    matched = False
    for want in expected:
        for got in received:
            matched |= hmac.compare_digest(want, got)
    return matched


def json_value(body: bytes, what: str = "body") -> Any:
    """Parse strict JSON (the worker's parser, :mod:`schemas.payload`) or raise MalformedRequest (400)."""
    try:
        return parse_json(body)
    except MalformedPayload as exc:
        raise MalformedRequest(f"{what} is not valid JSON: {exc}") from None


def json_object(body: bytes, what: str = "body") -> dict[str, Any]:
    """Parse a JSON object or raise MalformedRequest (400)."""
    value = json_value(body, what)
    if not isinstance(value, dict):
        raise MalformedRequest(f"{what} is JSON but not an object")
    return value


def required_str(obj: Mapping[str, Any], key: str, what: str = "body") -> str:
    """A non-empty string field (event id, event type); missing means MalformedRequest (400)."""
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedRequest(f"{what} has no {key!r} string")
    return value


def to_datetime(value: Any) -> datetime | None:
    """A provider's event time (Unix seconds or ISO 8601) as tz-aware UTC; None when absent or unreadable.

    Lenient on purpose: the time is informative, and a signed event is not refused for a bad one.
    """
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str) and value:
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def secret_values(name: str, settings: ProviderSettings) -> list[str]:
    """The provider's secrets as strings, failing at start-up when there are none."""
    values = [secret.get_secret_value() for secret in settings.secrets]
    if not values or not all(values):
        raise ConfigError(f"providers.{name}.secrets: needs at least one non-empty secret")
    return values
