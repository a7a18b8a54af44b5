"""What an outbound call can fail with; the caller asks the error whether to retry or dead-letter.

    RetryableError (services.errors)        may succeed later; ``retry_after`` in seconds when known
    ├── RetryableStatus                     a status in the API's retryable set (429, 503, ...)
    ├── CallTimeout                         no answer within the attempt timeout
    ├── NetworkError                        could not connect, or the connection broke
    ├── CircuitOpen                         the API's breaker is open; ``retry_after`` = until half-open
    └── DeadlineExceeded                    the overall deadline ran out (waiting, limiting or retrying)
    PermanentError (services.errors)        will not succeed as it is: dead-letter
    ├── PermanentStatus                     any other 4xx/5xx
    ├── PermanentNetworkError               a transport error the API's settings say not to retry
    └── InvalidRequest                      the request cannot be sent (bad URL, unsupported scheme)

Each names itself the way an envelope's history does (``error_class``: ``http_<status>``, ``timeout``,
``connect``, ``circuit_open``). httpx errors are translated once, in :func:`translate_transport_error`,
with ``raise ... from exc``.
"""

from __future__ import annotations

import httpx

from services.errors import PermanentError, RetryableError
from services.outbound.config import ErrorKind


class RetryableStatus(RetryableError):
    """The API answered with a status worth trying again; the response is kept for the record."""

    status: int

    def __init__(self, message: str, *, response: httpx.Response, retry_after: float | None = None) -> None:
        status = response.status_code
        super().__init__(message, error_class=f"http_{status}", status=status, retry_after=retry_after)
        self.response = response


class CallTimeout(RetryableError):
    error_class = "timeout"
    kind: ErrorKind = "timeout"


class NetworkError(RetryableError):
    """``error_class`` is ``timeout`` when connecting timed out, else ``connect``."""

    error_class = "connect"

    def __init__(self, message: str, *, kind: ErrorKind, error_class: str | None = None) -> None:
        super().__init__(message, error_class=error_class)
        self.kind = kind


class CircuitOpen(RetryableError):
    """Calls are refused locally so a failing API can recover; nothing was sent."""

    error_class = "circuit_open"


class DeadlineExceeded(RetryableError):
    """The call's overall deadline passed before a usable answer (pacing and waiting included)."""

    error_class = "timeout"


class PermanentStatus(PermanentError):
    status: int

    def __init__(self, message: str, *, response: httpx.Response) -> None:
        status = response.status_code
        super().__init__(message, error_class=f"http_{status}", status=status)
        self.response = response


class PermanentNetworkError(PermanentError):
    """``error_class`` is ``timeout`` when the transport error was a timeout, else ``connect``."""

    error_class = "connect"

    def __init__(self, message: str, *, kind: ErrorKind, error_class: str | None = None) -> None:
        super().__init__(message, error_class=error_class)
        self.kind = kind


class InvalidRequest(PermanentError):
    """The request itself is wrong (URL, scheme, body); retrying cannot help."""


def error_kind(exc: httpx.TransportError) -> ErrorKind:
    """Sort an httpx transport error: did the request reach the server, and did it time out?"""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return "connect"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    return "network"


def translate_transport_error(
    exc: httpx.TransportError, *, api: str, retryable: frozenset[ErrorKind]
) -> RetryableError | PermanentError:
    """Map one httpx transport error onto the tree above; the caller raises it ``from exc``."""
    if isinstance(exc, httpx.UnsupportedProtocol):
        return InvalidRequest(f"{api}: unsupported URL scheme ({exc})")
    kind = error_kind(exc)
    message = f"{api}: {kind} error: {type(exc).__name__}: {exc or 'no detail'}"
    # The history has always said "timeout" for every httpx timeout (a connect timeout too), and
    # "connect" for every other transport error.
    error_class = "timeout" if isinstance(exc, httpx.TimeoutException) else "connect"
    if kind not in retryable:
        return PermanentNetworkError(message, kind=kind, error_class=error_class)
    if kind == "timeout":
        return CallTimeout(message)
    return NetworkError(message, kind=kind, error_class=error_class)
