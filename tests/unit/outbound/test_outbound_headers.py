"""Rate-limit and Retry-After headers in every dialect the client claims to read."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from services.outbound.headers import RateLimitInfo, parse_rate_limit, parse_retry_after

NOW = 1_750_000_000.0


@pytest.mark.parametrize(("value", "expected"), [("120", 120.0), ("0", 0.0), (" 3 ", 3.0), ("1.5", 1.5)])
def test_retry_after_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_retry_after_http_date_counts_from_now() -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + 42, tz=UTC), usegmt=True)
    assert parse_retry_after(when, now=NOW) == pytest.approx(42)


def test_retry_after_date_in_the_past_means_now() -> None:
    when = format_datetime(datetime.fromtimestamp(NOW - 100, tz=UTC), usegmt=True)
    assert parse_retry_after(when, now=NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "Wed, 99 Foo 2015 07:28:00 GMT"])
def test_retry_after_unreadable_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


@pytest.mark.parametrize("prefix", ["X-RateLimit-", "X-Rate-Limit-", "RateLimit-"])
def test_prefixed_headers(prefix: str) -> None:
    headers = httpx.Headers({prefix + "Limit": "100", prefix + "Remaining": "25", prefix + "Reset": "30"})
    assert parse_rate_limit(headers, now=NOW) == RateLimitInfo(100, 25, 30)


def test_reset_as_unix_time_becomes_seconds() -> None:
    headers = httpx.Headers(
        {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW + 60))}
    )
    info = parse_rate_limit(headers, now=NOW)
    assert info is not None
    assert info.reset_after == pytest.approx(60)
    assert info.exhausted


def test_ietf_structured_with_policy() -> None:
    headers = httpx.Headers(
        {
            "RateLimit-Policy": '"burst";q=100;w=60, "day";q=1000;w=86400',
            "RateLimit": '"burst";r=50;t=30, "day";r=10;t=3600',
        }
    )
    info = parse_rate_limit(headers, now=NOW)
    assert info == RateLimitInfo(1000, 10, 3600)  # 1% left of the daily quota beats 50% of the burst one


def test_ietf_structured_without_policy_still_gives_remaining() -> None:
    info = parse_rate_limit(httpx.Headers({"RateLimit": '"default";r=7;t=2'}), now=NOW)
    assert info == RateLimitInfo(None, 7, 2)
    assert info.room is None


def test_ietf_draft_single_header_form() -> None:
    info = parse_rate_limit(httpx.Headers({"RateLimit": "limit=10, remaining=4, reset=3"}), now=NOW)
    assert info == RateLimitInfo(10, 4, 3)
    assert info.room == pytest.approx(0.4)


def test_limit_with_policy_suffix_reads_the_number() -> None:
    info = parse_rate_limit(
        httpx.Headers({"X-RateLimit-Limit": "100, 100;w=60", "X-RateLimit-Remaining": "99"})
    )
    assert info is not None and info.limit == 100 and info.remaining == 99


def test_most_restrictive_dialect_wins() -> None:
    headers = httpx.Headers(
        {
            "x-ratelimit-limit": "100",
            "x-ratelimit-remaining": "90",
            "ratelimit-limit": "10",
            "ratelimit-remaining": "1",
        }
    )
    assert parse_rate_limit(headers, now=NOW) == RateLimitInfo(10, 1, None)


def test_no_headers_no_info() -> None:
    assert parse_rate_limit(httpx.Headers({"content-type": "text/plain"})) is None
