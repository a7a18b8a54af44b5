"""PayPal verifier: generated RSA certificates served by a real local HTTPS server (see conftest)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from services.config import ConfigError
from services.edge.verifiers import PayPalVerifier, build_verifier
from services.edge.verifiers.signers import generate_paypal_certificate, sample_body, sign_paypal
from services.errors import BadSignature, MalformedRequest, Overloaded, StaleTimestamp
from tests.unit.verifiers.conftest import CertServer
from tests.unit.verifiers.verifier_support import NOW, lower, provider

WEBHOOK_ID = "1JE4291016473214C"
BODY = json.dumps(
    {
        "id": "WH-2WR32451HC0233532-67976317FL4543714",
        "create_time": "2023-11-14T22:10:00.123Z",
        "resource_type": "capture",
        "event_type": "PAYMENT.CAPTURE.COMPLETED",
        "resource": {"id": "42311647XV020574X"},
    }
).encode()


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@pytest.fixture(scope="module")
def signing() -> tuple[rsa.RSAPrivateKey, bytes]:
    """PayPal's stand-in: a key and a certificate valid from a day before NOW to 30 days after."""
    return generate_paypal_certificate(not_before=at(NOW - 86400), not_after=at(NOW + 30 * 86400))


@pytest.fixture
def cert_url(cert_server: CertServer, signing: tuple[rsa.RSAPrivateKey, bytes]) -> str:
    return cert_server.serve(f"/v1/notifications/certs/CERT-{uuid.uuid4()}", signing[1])


def make(http: httpx.AsyncClient, **kwargs: float) -> PayPalVerifier:
    settings = provider("paypal", "unused", webhook_id=WEBHOOK_ID, cert_hosts=["127.0.0.1"])
    return PayPalVerifier("paypal", settings, http, **kwargs)  # type: ignore[arg-type]


def signed(
    key: rsa.RSAPrivateKey, url: str, body: bytes = BODY, when: float = NOW, webhook_id: str = WEBHOOK_ID
) -> dict[str, str]:
    return lower(
        sign_paypal(
            body, key, cert_url=url, webhook_id=webhook_id, transmission_id="tx-1", transmission_time=at(when)
        )
    )


async def test_verifies_and_caches_the_certificate(
    https_client: httpx.AsyncClient,
    cert_server: CertServer,
    signing: tuple[rsa.RSAPrivateKey, bytes],
    cert_url: str,
) -> None:
    settings = provider("paypal", "unused", webhook_id=WEBHOOK_ID, cert_hosts=["127.0.0.1"])
    verifier = build_verifier(name="paypal", kind="paypal", settings=settings, http=https_client)
    [event] = await verifier.verify(BODY, signed(signing[0], cert_url), NOW)
    assert event.event_id == "WH-2WR32451HC0233532-67976317FL4543714"
    assert event.event_type == "PAYMENT.CAPTURE.COMPLETED"
    assert event.occurred_at == datetime(2023, 11, 14, 22, 10, 0, 123000, tzinfo=UTC)
    assert event.body == BODY
    await verifier.verify(BODY, signed(signing[0], cert_url, when=NOW + 10), NOW + 10)
    assert cert_server.hits[cert_url.removeprefix(cert_server.base_url)] == 1


async def test_concurrent_misses_share_one_fetch(
    https_client: httpx.AsyncClient,
    cert_server: CertServer,
    signing: tuple[rsa.RSAPrivateKey, bytes],
    cert_url: str,
) -> None:
    verifier = make(https_client)
    results = await asyncio.gather(
        *(verifier.verify(BODY, signed(signing[0], cert_url), NOW) for _ in range(5))
    )
    assert len(results) == 5
    assert cert_server.hits[cert_url.removeprefix(cert_server.base_url)] == 1


async def test_cache_entry_expires_after_ttl(
    https_client: httpx.AsyncClient,
    cert_server: CertServer,
    signing: tuple[rsa.RSAPrivateKey, bytes],
    cert_url: str,
) -> None:
    verifier = make(https_client, cache_ttl_seconds=60)
    await verifier.verify(BODY, signed(signing[0], cert_url), NOW)
    await verifier.verify(BODY, signed(signing[0], cert_url, when=NOW + 59), NOW + 59)
    await verifier.verify(BODY, signed(signing[0], cert_url, when=NOW + 61), NOW + 61)
    assert cert_server.hits[cert_url.removeprefix(cert_server.base_url)] == 2


async def test_cache_respects_not_after(https_client: httpx.AsyncClient, cert_server: CertServer) -> None:
    key, pem = generate_paypal_certificate(not_before=at(NOW - 86400), not_after=at(NOW + 100))
    url = cert_server.serve("/certs/short-lived.pem", pem)
    verifier = make(https_client)
    await verifier.verify(BODY, signed(key, url), NOW)
    await verifier.verify(BODY, signed(key, url, when=NOW + 99), NOW + 99)
    assert cert_server.hits["/certs/short-lived.pem"] == 1
    with pytest.raises(BadSignature, match="certificate expired at 2023-11-14T22:15:00Z"):
        await verifier.verify(BODY, signed(key, url, when=NOW + 101), NOW + 101)
    assert cert_server.hits["/certs/short-lived.pem"] == 2  # looked again for a renewed one


async def test_certificate_not_yet_valid(https_client: httpx.AsyncClient, cert_server: CertServer) -> None:
    key, pem = generate_paypal_certificate(not_before=at(NOW + 100), not_after=at(NOW + 86400))
    url = cert_server.serve("/certs/future.pem", pem)
    with pytest.raises(BadSignature, match="not valid before"):
        await make(https_client).verify(BODY, signed(key, url), NOW)


async def test_cache_is_bounded(
    https_client: httpx.AsyncClient, cert_server: CertServer, signing: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    verifier = make(https_client, cache_size=2)
    urls = [cert_server.serve(f"/certs/lru-{i}.pem", signing[1]) for i in range(3)]
    for url in [*urls, urls[2], urls[0]]:
        await verifier.verify(BODY, signed(signing[0], url), NOW)
    assert len(verifier.certs) == 2
    assert [cert_server.hits[f"/certs/lru-{i}.pem"] for i in range(3)] == [2, 1, 1]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://evil.example.com/cert.pem", "host 'evil.example.com' is not an allowed"),
        ("https://api.paypal.com.evil.example/cert.pem", "host 'api.paypal.com.evil.example'"),
        ("https://127.0.0.1.nip.io/cert.pem", "host '127.0.0.1.nip.io'"),
        ("ftp://127.0.0.1/cert.pem", "must use https"),
        ("//127.0.0.1/cert.pem", "must use https"),
        ("https://127.0.0.1:99999/cert.pem", "not a valid URL"),
    ],
)
async def test_certificate_url_must_be_https_on_an_allowed_host(
    url: str, words: str, signing: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda _: pytest.fail("fetched"))) as http:
        with pytest.raises(BadSignature, match=words):
            await make(http).verify(BODY, signed(signing[0], url), NOW)


async def test_plain_http_on_an_allowed_host_is_refused(
    https_client: httpx.AsyncClient,
    cert_server: CertServer,
    signing: tuple[rsa.RSAPrivateKey, bytes],
    cert_url: str,
) -> None:
    url = cert_url.replace("https://", "http://")
    with pytest.raises(BadSignature, match="must use https, not 'http'"):
        await make(https_client).verify(BODY, signed(signing[0], url), NOW)
    assert cert_server.hits[cert_url.removeprefix(cert_server.base_url)] == 0


async def test_default_hosts_are_paypals(signing: tuple[rsa.RSAPrivateKey, bytes], cert_url: str) -> None:
    settings = provider("paypal", "unused", webhook_id=WEBHOOK_ID)
    async with httpx.AsyncClient() as http:
        verifier = build_verifier(name="paypal", kind="paypal", settings=settings, http=http)
        with pytest.raises(BadSignature, match=re.escape("host '127.0.0.1' is not an allowed")):
            await verifier.verify(BODY, signed(signing[0], cert_url), NOW)


async def test_tampered_body(
    https_client: httpx.AsyncClient, signing: tuple[rsa.RSAPrivateKey, bytes], cert_url: str
) -> None:
    with pytest.raises(BadSignature):
        await make(https_client).verify(
            BODY.replace(b"COMPLETED", b"REFUNDED"), signed(signing[0], cert_url), NOW
        )


async def test_other_webhook_id(
    https_client: httpx.AsyncClient, signing: tuple[rsa.RSAPrivateKey, bytes], cert_url: str
) -> None:
    with pytest.raises(BadSignature, match="webhook id"):
        await make(https_client).verify(BODY, signed(signing[0], cert_url, webhook_id="SOMEONE-ELSE"), NOW)


async def test_signed_with_a_key_that_is_not_the_certificates(
    https_client: httpx.AsyncClient, signing: tuple[rsa.RSAPrivateKey, bytes], cert_url: str
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(BadSignature):
        await make(https_client).verify(BODY, signed(other, cert_url), NOW)


@pytest.mark.parametrize(("offset", "words"), [(-301, "s old"), (301, "in the future")])
async def test_transmission_time_outside_tolerance(
    https_client: httpx.AsyncClient,
    cert_server: CertServer,
    signing: tuple[rsa.RSAPrivateKey, bytes],
    cert_url: str,
    offset: int,
    words: str,
) -> None:
    with pytest.raises(StaleTimestamp, match=words):
        await make(https_client).verify(BODY, signed(signing[0], cert_url, when=NOW + offset), NOW)
    assert cert_server.hits[cert_url.removeprefix(cert_server.base_url)] == 0  # refused before any fetch


@pytest.mark.parametrize(
    "missing",
    [
        "paypal-transmission-id",
        "paypal-transmission-time",
        "paypal-transmission-sig",
        "paypal-cert-url",
        "paypal-auth-algo",
    ],
)
async def test_missing_header(
    missing: str, https_client: httpx.AsyncClient, signing: tuple[rsa.RSAPrivateKey, bytes], cert_url: str
) -> None:
    headers = signed(signing[0], cert_url)
    del headers[missing]
    with pytest.raises(BadSignature, match=f"missing {missing.upper()}"):
        await make(https_client).verify(BODY, headers, NOW)


@pytest.mark.parametrize(
    ("header", "value", "words"),
    [
        ("paypal-auth-algo", "SHA1withRSA", "not supported"),
        ("paypal-transmission-sig", "***", "not base64"),
        ("paypal-transmission-time", "yesterday", "not an ISO 8601 time"),
        ("paypal-transmission-id", "tx-2", "does not match"),
    ],
)
async def test_malformed_header(
    header: str,
    value: str,
    words: str,
    https_client: httpx.AsyncClient,
    signing: tuple[rsa.RSAPrivateKey, bytes],
    cert_url: str,
) -> None:
    headers = signed(signing[0], cert_url)
    headers[header] = value
    with pytest.raises(BadSignature, match=words):
        await make(https_client).verify(BODY, headers, NOW)


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "words"),
    [
        (404, b"nope", {}, BadSignature, "answered 404"),
        (302, b"", {"location": "https://127.0.0.1/elsewhere"}, BadSignature, "answered 302"),
        (200, b"this is not a certificate", {}, BadSignature, "did not serve a PEM certificate"),
        (200, b"x" * 70_000, {}, BadSignature, "more than 65536 bytes"),
        (503, b"down", {}, Overloaded, "answered 503"),
    ],
)
async def test_certificate_host_answers_badly(
    status: int,
    body: bytes,
    headers: dict[str, str],
    error: type[Exception],
    words: str,
    https_client: httpx.AsyncClient,
    cert_server: CertServer,
    signing: tuple[rsa.RSAPrivateKey, bytes],
) -> None:
    url = cert_server.serve(f"/certs/bad-{uuid.uuid4()}", body, status=status, headers=headers)
    with pytest.raises(error, match=words):
        await make(https_client).verify(BODY, signed(signing[0], url), NOW)


async def test_certificate_without_an_rsa_key(
    https_client: httpx.AsyncClient, cert_server: CertServer, signing: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    ca_pem = cert_server.ca_file.read_bytes()  # an EC certificate
    url = cert_server.serve("/certs/ec.pem", ca_pem)
    with pytest.raises(BadSignature, match="RSA"):
        await make(https_client).verify(BODY, signed(signing[0], url), NOW)


async def test_unreachable_certificate_host_is_retryable(
    https_client: httpx.AsyncClient, signing: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(Overloaded) as caught:
        await make(https_client).verify(BODY, signed(signing[0], f"https://127.0.0.1:{port}/c.pem"), NOW)
    assert caught.value.status == 503 and caught.value.retry_after


async def test_untrusted_tls_is_not_accepted(signing: tuple[rsa.RSAPrivateKey, bytes], cert_url: str) -> None:
    async with httpx.AsyncClient() as http:  # trusts the public roots only, not the test CA
        with pytest.raises(Overloaded, match="ConnectError"):
            await make(http).verify(BODY, signed(signing[0], cert_url), NOW)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"not json", "not valid JSON"),
        (b'{"event_type": "X"}', "'id'"),
        (b'{"id": "WH-1"}', "'event_type'"),
    ],
)
async def test_signed_body_that_is_malformed(
    body: bytes,
    words: str,
    https_client: httpx.AsyncClient,
    signing: tuple[rsa.RSAPrivateKey, bytes],
    cert_url: str,
) -> None:
    with pytest.raises(MalformedRequest, match=words):
        await make(https_client).verify(body, signed(signing[0], cert_url, body=body), NOW)


async def test_sample_body_verifies(
    https_client: httpx.AsyncClient, signing: tuple[rsa.RSAPrivateKey, bytes], cert_url: str
) -> None:
    body = sample_body("paypal", now=NOW)
    [event] = await make(https_client).verify(body, signed(signing[0], cert_url, body=body), NOW)
    assert event.event_type == "PAYMENT.CAPTURE.COMPLETED"
    assert event.occurred_at == at(NOW)


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="HTTP client"):
        build_verifier(name="pp", kind="paypal", settings=provider("paypal", "x", webhook_id="W"))
    with pytest.raises(ConfigError, match=r"providers\.pp\.webhook_id"):
        PayPalVerifier("pp", provider("paypal", "x"), httpx.AsyncClient())


def test_signer_uses_paypals_time_format() -> None:
    key, _ = generate_paypal_certificate(not_before=at(NOW), not_after=at(NOW) + timedelta(days=1))
    headers = sign_paypal(b"{}", key, cert_url="u", webhook_id="w", transmission_time=at(NOW))
    assert headers["PAYPAL-TRANSMISSION-TIME"] == "2023-11-14T22:13:20Z"
    assert headers["PAYPAL-AUTH-ALGO"] == "SHA256withRSA"
