"""Where PayPal's signing certificates come from: an allow-listed HTTPS host, then a bounded cache.

PayPal names the certificate in the ``PAYPAL-CERT-URL`` header of every webhook, so the URL is
attacker-controlled input: anyone can send it, signed or not. It is fetched only over HTTPS from a
host in ``cert_hosts`` (exact match; TLS to that host is what makes the certificate PayPal's),
without following redirects and up to a size limit. The URL is normalized first (lower-case host,
no default port, dot segments resolved) and one with a query, a fragment or user info is refused:
PayPal's are plain ``https://api.paypal.com/v1/notifications/certs/CERT-...`` paths, and a query
string must not make a new cache key. Certificates are cached by that URL until
``min(fetched + ttl, notAfter)``, at most ``max_entries`` of them (least recently used goes
first); concurrent misses for one URL share one fetch; a failed fetch is remembered for
``failure_ttl_seconds`` (the same answer, no new fetch); and fetches are bounded by a token bucket
(``fetch_burst`` at once, ``fetch_rate`` a second after), past which the request gets 503. So a
storm of webhooks, forged or not, costs PayPal a few requests, never one per webhook.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from aiolimiter import AsyncLimiter
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from services.errors import BadSignature, Overloaded, RejectedRequest

MAX_CERT_BYTES = 64 * 1024
MAX_CERT_URL_LENGTH = 500  # PayPal's own limit for cert_url in its verify-webhook-signature API
RETRY_AFTER_SECONDS = 30


@dataclass(frozen=True, slots=True)
class CachedCert:
    public_key: rsa.RSAPublicKey
    not_before: float
    not_after: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class CachedFailure:
    error: RejectedRequest
    expires_at: float

    def again(self, now: float) -> RejectedRequest:
        """The same refusal, with Retry-After counting down to when a fetch may be tried again."""
        if isinstance(self.error, Overloaded):
            wait = max(1, math.ceil(self.expires_at - now))
            return Overloaded(self.error.message, retry_after=wait, code=self.error.code)
        return type(self.error)(self.error.message)


def _utc(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_certificate(pem: bytes, now: float, ttl: float) -> CachedCert:
    """The leaf (first) certificate of a PEM chain, with its RSA key and validity window."""
    try:
        cert = x509.load_pem_x509_certificates(pem)[0]
    except ValueError:
        raise BadSignature("PAYPAL-CERT-URL did not serve a PEM certificate") from None
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise BadSignature("PayPal certificate does not hold an RSA key")
    not_after = cert.not_valid_after_utc.timestamp()
    return CachedCert(
        public_key=key,
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=not_after,
        expires_at=min(now + ttl, not_after),
    )


class CertificateCache:
    """Fetches and caches PayPal signing certificates. One per PayPal verifier."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        hosts: list[str],
        *,
        max_entries: int = 32,
        ttl_seconds: float = 3600.0,
        timeout_seconds: float = 5.0,
        failure_ttl_seconds: float = 30.0,
        fetch_burst: int = 4,
        fetch_rate: float = 0.2,
    ) -> None:
        self._http = http
        self._hosts = frozenset(host.lower() for host in hosts)
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._timeout = timeout_seconds
        self._failure_ttl = failure_ttl_seconds
        self._entries: OrderedDict[str, CachedCert] = OrderedDict()
        self._failures: OrderedDict[str, CachedFailure] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[CachedCert]] = {}
        self._fetches = AsyncLimiter(max_rate=fetch_burst, time_period=fetch_burst / fetch_rate)
        self._fetch_retry_after = max(1, math.ceil(1 / fetch_rate))

    def normalize(self, url: str) -> str:
        """The URL to fetch and to cache under, or BadSignature when it may not be fetched."""
        if len(url) > MAX_CERT_URL_LENGTH:
            raise BadSignature(f"PAYPAL-CERT-URL is longer than {MAX_CERT_URL_LENGTH} characters")
        try:
            urlsplit(url).port  # noqa: B018  (raises ValueError on a port out of range)
            parts = httpx.URL(url)
        except (httpx.InvalidURL, ValueError):
            raise BadSignature("PAYPAL-CERT-URL is not a valid URL") from None
        host = parts.host
        if host not in self._hosts:
            raise BadSignature(f"PAYPAL-CERT-URL host {host!r} is not an allowed PayPal certificate host")
        if parts.scheme != "https":
            raise BadSignature(f"PAYPAL-CERT-URL must use https, not {parts.scheme!r}")
        if parts.query or parts.fragment or parts.userinfo or "?" in url or "#" in url:
            raise BadSignature("PAYPAL-CERT-URL must not carry a query, a fragment or user info")
        port = f":{parts.port}" if parts.port not in (None, 443) else ""
        return f"https://{host}{port}{parts.path or '/'}"

    def check_url(self, url: str) -> None:
        """Refuse a certificate URL that is not plain HTTPS on an allow-listed host."""
        self.normalize(url)

    async def public_key(self, url: str, now: float) -> rsa.RSAPublicKey:
        """The RSA key of the certificate at ``url``, which must be valid at ``now``."""
        url = self.normalize(url)
        entry = self._entries.get(url)
        if entry is not None and now < entry.expires_at:
            self._entries.move_to_end(url)
        else:
            self._entries.pop(url, None)
            failure = self._failures.get(url)
            if failure is not None and now < failure.expires_at:
                raise failure.again(now)
            self._failures.pop(url, None)
            entry = await self._fetch_once(url, now)
        if now < entry.not_before:
            raise BadSignature(f"PayPal certificate is not valid before {_utc(entry.not_before)}")
        if now > entry.not_after:
            raise BadSignature(f"PayPal certificate expired at {_utc(entry.not_after)}")
        return entry.public_key

    def __len__(self) -> int:
        return len(self._entries)

    async def _fetch_once(self, url: str, now: float) -> CachedCert:
        task = self._inflight.get(url)
        if task is None:
            if not self._fetches.has_capacity():
                raise Overloaded(
                    "too many PayPal certificate fetches; try again later",
                    retry_after=self._fetch_retry_after,
                    code="cert_unavailable",
                )
            await self._fetches.acquire()  # returns at once: has_capacity() just said so
            task = asyncio.create_task(self._fetch(url, now))
            self._inflight[url] = task
            task.add_done_callback(lambda done: self._fetched(url, done))
        # shield: one caller giving up (client went away) must not cancel the others' fetch.
        try:
            entry = await asyncio.shield(task)
        except RejectedRequest as error:
            self._remember_failure(url, error, now)
            raise
        self._store(url, entry)
        return entry

    def _remember_failure(self, url: str, error: RejectedRequest, now: float) -> None:
        self._failures[url] = CachedFailure(error, now + self._failure_ttl)
        self._failures.move_to_end(url)
        while len(self._failures) > self._max_entries:
            self._failures.popitem(last=False)

    def _fetched(self, url: str, task: asyncio.Task[CachedCert]) -> None:
        self._inflight.pop(url, None)
        if not task.cancelled():
            task.exception()  # retrieved here too, so a fetch nobody waits for any more is not logged

    def _store(self, url: str, entry: CachedCert) -> None:
        self._entries[url] = entry
        self._entries.move_to_end(url)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def _fetch(self, url: str, now: float) -> CachedCert:
        try:
            async with self._http.stream(
                "GET", url, follow_redirects=False, timeout=self._timeout
            ) as response:
                if response.status_code >= 500:
                    raise Overloaded(
                        f"PayPal certificate host answered {response.status_code}",
                        retry_after=RETRY_AFTER_SECONDS,
                        code="cert_unavailable",
                    )
                if response.status_code != 200:
                    raise BadSignature(f"PAYPAL-CERT-URL answered {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_CERT_BYTES:
                        raise BadSignature(f"PAYPAL-CERT-URL served more than {MAX_CERT_BYTES} bytes")
        except httpx.HTTPError as exc:
            raise Overloaded(
                f"cannot fetch PayPal certificate: {type(exc).__name__}",
                retry_after=RETRY_AFTER_SECONDS,
                code="cert_unavailable",
            ) from exc
        return parse_certificate(bytes(body), now, self._ttl)
