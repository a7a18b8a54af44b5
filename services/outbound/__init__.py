"""Calling third-party and internal APIs safely: adaptive rate limits, retries, circuit breakers."""

from services.outbound.backoff import BackoffWait, backoff_delay
from services.outbound.batch import CallSpec, run_bounded
from services.outbound.breaker import BreakerState, CircuitBreaker
from services.outbound.client import IDEMPOTENT_METHODS, APIClient
from services.outbound.config import (
    APISettings,
    BreakerSettings,
    PoolSettings,
    RateLimitSettings,
    RetrySettings,
    TimeoutSettings,
)
from services.outbound.errors import (
    CallTimeout,
    CircuitOpen,
    DeadlineExceeded,
    InvalidRequest,
    NetworkError,
    PermanentNetworkError,
    PermanentStatus,
    RetryableStatus,
)
from services.outbound.headers import RateLimitInfo, parse_rate_limit, parse_retry_after
from services.outbound.limiter import AdaptiveLimiter
from services.outbound.manager import APIManager

__all__ = [
    "IDEMPOTENT_METHODS",
    "APIClient",
    "APIManager",
    "APISettings",
    "AdaptiveLimiter",
    "BackoffWait",
    "BreakerSettings",
    "BreakerState",
    "CallSpec",
    "CallTimeout",
    "CircuitBreaker",
    "CircuitOpen",
    "DeadlineExceeded",
    "InvalidRequest",
    "NetworkError",
    "PermanentNetworkError",
    "PermanentStatus",
    "PoolSettings",
    "RateLimitInfo",
    "RateLimitSettings",
    "RetrySettings",
    "RetryableStatus",
    "TimeoutSettings",
    "backoff_delay",
    "parse_rate_limit",
    "parse_retry_after",
    "run_bounded",
]
