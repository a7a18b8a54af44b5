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
    ├── DeliveryFailed            a call to a destination or an API failed: error_class, status, retry_after
    │   ├── RetryableError        may succeed later (timeouts, 5xx, 429): a retry tier
    │   │   ├── RetryableStatus, CallTimeout, NetworkError, CircuitOpen, DeadlineExceeded
    │   │   │                                                           services/outbound/errors.py
    │   │   └── ServiceUnavailable                                      services/reliability/registry.py
    │   └── PermanentError        never will (other 4xx, poison payloads): dead-letter now
    │       └── PermanentStatus, PermanentNetworkError, InvalidRequest  services/outbound/errors.py
    ├── ConfigError               the settings cannot be used           services/config.py
    ├── MalformedPayload          a body that is not strict JSON        schemas/payload.py
    ├── EnvelopeSignatureError    a record no trusted edge signed       schemas/signing.py
    ├── Quarantined               a record dedup cannot judge           streams/dedup.py
    ├── BadHeader                 a record header we cannot read        streams/poison.py
    ├── Blocked                   a destination cooling down: park      streams/shaping.py
    ├── OutputsRefused            the broker refused a transaction      streams/eos.py
    ├── ClientGone                the client left mid-body              services/edge/ingest.py
    ├── NoFallback, FallbacksExhausted                                  services/reliability/fallback.py
    ├── FilterError, AmbiguousId  an operator's filter or id            services/operators/
    ├── BodyTooLarge              operator API body over its limit      services/operators/api.py
    ├── TopicError, LocalKafkaError                                     services/kafka/
    └── StackError                a piece of the flood did not come up  services/flood/stack.py

``tests/unit/test_error_tree.py`` fails when an exception defined in ``services``, ``streams`` or
``schemas`` is not in this tree. Messages name what was wrong and never carry secrets or signature
values.
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


class DeliveryFailed(BreakwaterError):
    """A call to a destination or an API failed; the subclass says whether trying again can help.

    ``error_class`` is what the envelope's history records (``http_503``, ``timeout``, ``connect``,
    ``circuit_open``; the class's name unless a subclass or the caller names it). ``status`` is the
    HTTP status when there was an answer; ``retry_after`` the seconds the API asked us to wait.
    """

    error_class: str = ""

    def __init__(
        self,
        message: str,
        *,
        error_class: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class or self.error_class or type(self).__name__
        self.status = status
        self.retry_after = retry_after


class RetryableError(DeliveryFailed):
    """A delivery that failed now and may succeed later."""

    retryable = True


class PermanentError(DeliveryFailed):
    """A delivery that will never succeed as it is: dead-letter it with this reason."""

    def __init__(self, message: str, *, error_class: str | None = None, status: int | None = None) -> None:
        super().__init__(message, error_class=error_class, status=status)
