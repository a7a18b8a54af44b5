"""Breakwater's one error tree. The code that catches an error asks the error what to do.

    BreakwaterError
    ├── RejectedRequest           an inbound request we refuse; carries the HTTP status and a code
    │   ├── BadSignature          401  wrong or missing signature, unknown key
    │   ├── StaleTimestamp        401  timestamp outside the tolerance (too old or in the future)
    │   ├── MalformedRequest      400  body or headers we cannot parse; missing event id
    │   ├── PayloadTooLarge       413
    │   ├── UnknownProvider       404
    │   ├── UnsupportedMediaType  415
    │   └── Overloaded            429 / 503 with Retry-After
    ├── RetryableError            a delivery that may succeed later (timeouts, 5xx, 429)
    └── PermanentError            a delivery that never will (other 4xx, poison payloads): dead-letter now

Messages name what was wrong and never carry secrets or signature values.
"""

from __future__ import annotations


class BreakwaterError(Exception):
    """Root of every error Breakwater raises on purpose."""

    retryable: bool = False


class RejectedRequest(BreakwaterError):
    """An inbound request refused with ``status``; ``code`` is a stable machine-readable name."""

    status: int = 400
    code: str = "rejected"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class BadSignature(RejectedRequest):
    status = 401
    code = "bad_signature"


class StaleTimestamp(RejectedRequest):
    status = 401
    code = "stale_timestamp"


class MalformedRequest(RejectedRequest):
    status = 400
    code = "malformed"


class PayloadTooLarge(RejectedRequest):
    status = 413
    code = "too_large"


class UnknownProvider(RejectedRequest):
    status = 404
    code = "unknown_provider"


class UnsupportedMediaType(RejectedRequest):
    status = 415
    code = "unsupported_media_type"


class Overloaded(RejectedRequest):
    """The request may succeed later: 429 (rate limited) or 503 (Kafka slow, buffer full)."""

    status = 503
    code = "overloaded"

    def __init__(self, message: str, *, retry_after: int, status: int = 503, code: str | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status
        if code is not None:
            self.code = code


class RetryableError(BreakwaterError):
    """A delivery that failed now and may succeed later."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(BreakwaterError):
    """A delivery that will never succeed as it is: dead-letter it with this reason."""
