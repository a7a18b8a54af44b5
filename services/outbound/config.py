"""Settings for one outbound API: where it is, how long to wait, how fast to call, when to give up.

Sections on :class:`~services.settings_base.Section`, like :mod:`services.config`, so a typo in the TOML
fails at start with the field's dotted name. This module imports only pydantic and that base: the root
settings validate ``[apis]`` (and HTTP destinations reuse :class:`BreakerSettings` and
:class:`RateLimitSettings`) without importing the outbound client. Times are seconds (floats), so tests
can scale them to ms::

    [apis.payments]
    base_url = "https://api.example.com"
    timeouts = { attempt = 2.0, overall = 10.0 }
    rate_limit = { start = 50, min = 1, max = 200 }
    retry = { strategy = "decorrelated_jitter", max_attempts = 5, base_delay = 0.2, max_delay = 5 }
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, HttpUrl, model_validator

from services.secrets import Secret
from services.settings_base import Section

RetryStrategy = Literal["exponential", "linear", "polynomial", "fibonacci", "decorrelated_jitter"]
ErrorKind = Literal["connect", "timeout", "network"]
"""``connect``: never reached the server; ``timeout``: no answer in time; ``network``: connection broke."""

DEFAULT_RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class TimeoutSettings(Section):
    """``attempt`` bounds one HTTP exchange; ``overall`` bounds the call with every retry and wait."""

    connect: float = Field(default=2.0, gt=0)
    attempt: float = Field(default=5.0, gt=0)
    overall: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _overall_covers_attempt(self) -> TimeoutSettings:
        if self.overall < self.attempt:
            raise ValueError(f"overall ({self.overall}) must be at least attempt ({self.attempt})")
        return self


class PoolSettings(Section):
    max_connections: int = Field(default=100, ge=1)
    max_keepalive_connections: int = Field(default=20, ge=0)
    keepalive_expiry: float = Field(default=30.0, ge=0)
    http2: bool = False


class RateLimitSettings(Section):
    """AIMD bounds in requests per second: start at ``start``, never leave [``min``, ``max``].

    ``decrease_factor`` multiplies the rate on 429, 5xx and timeouts (at most once per
    ``decrease_interval``); ``increase_step`` is added after a success while the API shows room
    (at most once per ``increase_interval``). ``low_water`` is the share of the quota left below
    which the rate stops growing.
    """

    enabled: bool = True
    start: float = Field(default=20.0, gt=0)
    min: float = Field(default=1.0, gt=0)
    max: float = Field(default=100.0, gt=0)
    burst: int = Field(default=10, ge=1)
    decrease_factor: float = Field(default=0.5, gt=0, lt=1)
    increase_step: float = Field(default=1.0, gt=0)
    decrease_interval: float = Field(default=1.0, ge=0)
    increase_interval: float = Field(default=1.0, ge=0)
    low_water: float = Field(default=0.1, ge=0, lt=1)
    increase_without_headers: bool = True
    """Grow on success when the API sends no rate-limit headers at all (else only when headers show room)."""

    @model_validator(mode="after")
    def _ordered(self) -> RateLimitSettings:
        if not self.min <= self.start <= self.max:
            raise ValueError(f"need min <= start <= max, got {self.min}, {self.start}, {self.max}")
        return self


class RetrySettings(Section):
    """When and how long to wait before trying again. ``max_attempts`` counts the first try."""

    strategy: RetryStrategy = "exponential"
    max_attempts: int = Field(default=4, ge=1)
    base_delay: float = Field(default=0.1, gt=0)
    max_delay: float = Field(default=10.0, gt=0)
    multiplier: float = Field(default=2.0, ge=1)
    """Exponential growth factor."""
    power: float = Field(default=2.0, gt=0)
    """Polynomial exponent: ``base_delay * attempt ** power``."""
    jitter: float = Field(default=0.0, ge=0, le=1)
    """Random share taken off each delay (0: none, 1: full jitter); decorrelated jitter has its own."""
    retryable_statuses: frozenset[int] = DEFAULT_RETRYABLE_STATUSES
    retryable_errors: frozenset[ErrorKind] = frozenset({"connect", "timeout", "network"})
    respect_retry_after: bool = True

    @model_validator(mode="after")
    def _delays(self) -> RetrySettings:
        if self.base_delay > self.max_delay:
            raise ValueError(f"base_delay ({self.base_delay}) must not exceed max_delay ({self.max_delay})")
        if bad := sorted(s for s in self.retryable_statuses if not 100 <= s <= 599):
            raise ValueError(f"retryable_statuses has invalid HTTP statuses {bad}")
        return self


class BreakerSettings(Section):
    """Open when at least ``min_calls`` in the last ``window`` seconds failed at ``failure_rate`` or more.

    After ``open_for`` seconds, up to ``half_open_max_calls`` probes may run; that many successes close
    the breaker, one failure opens it again.
    """

    enabled: bool = True
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    min_calls: int = Field(default=10, ge=1)
    window: float = Field(default=30.0, gt=0)
    buckets: int = Field(default=10, ge=1, le=1000)
    open_for: float = Field(default=15.0, gt=0)
    half_open_max_calls: int = Field(default=3, ge=1)
    failure_statuses: frozenset[int] = frozenset(range(500, 600))
    """Statuses that count as a failure of the API (429 and 4xx do not: the API is up)."""


class APISettings(Section):
    """One third-party or internal API.

    >>> APISettings(base_url="http://127.0.0.1:8080", rate_limit={"start": 5, "max": 10})  # doctest: +SKIP
    """

    base_url: HttpUrl
    headers: dict[str, Secret] = Field(default_factory=dict)
    """Sent on every call; values may be ``env:NAME`` or ``file:PATH`` references (tokens)."""
    request_id_header: str = "X-Request-ID"
    idempotency_header: str = "Idempotency-Key"
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)
    pool: PoolSettings = Field(default_factory=PoolSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    batch_concurrency: int = Field(default=10, ge=1)
    follow_redirects: bool = False
    verify_tls: bool = True
