"""PayPal certificate fetches are earned: checks first, one cache key per certificate, failures
remembered, and a bounded rate. A real local HTTPS server counts every fetch (see conftest)."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from services.edge.verifiers import PayPalVerifier
from services.errors import BadSignature, MalformedRequest, Overloaded
from tests.unit.verifiers.conftest import CertServer
from tests.unit.verifiers.test_verify_paypal import BODY, WEBHOOK_ID, signed, signing  # noqa: F401
from tests.unit.verifiers.verifier_support import NOW, provider


def make(http: httpx.AsyncClient, **kwargs: float) -> PayPalVerifier:
    settings = provider("paypal", "unused", webhook_id=WEBHOOK_ID, cert_hosts=["127.0.0.1"])
    return PayPalVerifier("paypal", settings, http, **kwargs)  # type: ignore[arg-type]


def path_of(cert_server: CertServer, url: str) -> str:
    return url.removeprefix(cert_server.base_url)


@pytest.fixture
def cert_url(cert_server: CertServer, signing: tuple[rsa.RSAPrivateKey, bytes]) -> str:  # noqa: F811
    return cert_server.serve(f"/v1/notifications/certs/CERT-{uuid.uuid4()}", signing[1])


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ({"paypal-transmission-sig": None}, BadSignature, "missing PAYPAL-TRANSMISSION-SIG"),
        ({"paypal-transmission-sig": base64.b64encode(b"x" * 16).decode()}, BadSignature, "length"),
        ({"paypal-transmission-id": "12345"}, BadSignature, "not a PayPal transmission id"),
        ({"paypal-transmission-id": "tx 1; drop"}, BadSignature, "not a PayPal transmission id"),
        ({"paypal-transmission-id": "t" * 51}, BadSignature, "not a PayPal transmission id"),
        ({"paypal-transmission-time": "2001-01-01T00:00:00Z"}, Exception, "old"),
        ({"paypal-auth-algo": "none"}, BadSignature, "not supported"),
    ],
)
async def test_what_can_be_checked_before_a_fetch_is(
    change: dict[str, object],
    error: type[Exception],
    words: str,
    https_client: httpx.AsyncClient,
    cert_server: CertServer,
    signing: tuple[rsa.RSAPrivateKey, bytes],  # noqa: F811
    cert_url: str,
) -> None:
    body = change.pop("body", BODY)
    assert isinstance(body, bytes)
    headers = signed(signing[0], cert_url, body=body)
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = str(value)
    with pytest.raises(error, match=words):
        await make(https_client).verify(body, headers, NOW)
    assert cert_server.hits[path_of(cert_server, cert_url)] == 0


@pytest.mark.parametrize(
    ("body", "words"), [(b"not json", "not valid JSON"), (b'{"id":"WH-1"}', "event_type")]
)
async def test_a_body_is_read_only_once_its_signature_holds(
    body: bytes,
    words: str,
    https_client: httpx.AsyncClient,
    cert_server: CertServer,
    signing: tuple[rsa.RSAPrivateKey, bytes],  # noqa: F811
    cert_url: str,
) -> None:
    """Signed, a malformed body is a 400 naming the fault; forged, the same body is a 401 and no more."""
    with pytest.raises(MalformedRequest, match=words):
        await make(https_client).verify(body, signed(signing[0], cert_url, body=body), NOW)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(BadSignature, match="does not match"):
        await make(https_client).verify(body, signed(stranger, cert_url, body=body), NOW)


@pytest.mark.parametrize("suffix", ["?v=1", "?", "#x", "?a=b#c"])
async def test_a_query_or_fragment_is_refused_without_a_fetch(
    suffix: str,
    https_client: httpx.AsyncClient,
    cert_server: CertServer,
    signing: tuple[rsa.RSAPrivateKey, bytes],  # noqa: F811
    cert_url: str,
) -> None:
    verifier = make(https_client)
    with pytest.raises(BadSignature, match="must not carry a query"):
        await verifier.verify(BODY, signed(signing[0], cert_url + suffix), NOW)
    assert cert_server.hits[path_of(cert_server, cert_url)] == 0


async def test_spellings_of_one_url_share_one_cache_entry(
    https_client: httpx.AsyncClient,
    cert_server: CertServer,
    signing: tuple[rsa.RSAPrivateKey, bytes],  # noqa: F811
    cert_url: str,
) -> None:
    verifier = make(https_client)
    path = path_of(cert_server, cert_url)
    spellings = [
        cert_url,
        cert_url.replace("/v1/notifications/", "/v1/./notifications/"),
        cert_url.replace("/v1/notifications/", "/v1/x/../notifications/"),
        cert_url.replace("https://", "HTTPS://"),
    ]
    for url in spellings:
        await verifier.verify(BODY, signed(signing[0], url), NOW)
    assert cert_server.hits[path] == 1
    assert len(verifier.certs) == 1


@pytest.mark.parametrize(("status", "error"), [(404, BadSignature), (503, Overloaded)])
async def test_a_failed_fetch_is_remembered_briefly(
    status: int,
    error: type[Exception],
    https_client: httpx.AsyncClient,
    cert_server: CertServer,
    signing: tuple[rsa.RSAPrivateKey, bytes],  # noqa: F811
) -> None:
    url = cert_server.serve(f"/certs/failing-{uuid.uuid4()}", b"no", status=status)
    verifier = make(https_client, failure_ttl_seconds=30)
    for offset in (0, 10, 29):
        with pytest.raises(error, match=f"answered {status}") as caught:
            await verifier.verify(BODY, signed(signing[0], url, when=NOW + offset), NOW + offset)
    assert cert_server.hits[path_of(cert_server, url)] == 1
    if isinstance(caught.value, Overloaded):
        assert caught.value.retry_after == 1  # counts down to when a fetch is tried again
    with pytest.raises(error):
        await verifier.verify(BODY, signed(signing[0], url, when=NOW + 31), NOW + 31)
    assert cert_server.hits[path_of(cert_server, url)] == 2


async def test_fetches_are_rate_bounded(
    https_client: httpx.AsyncClient,
    cert_server: CertServer,
    signing: tuple[rsa.RSAPrivateKey, bytes],  # noqa: F811
) -> None:
    """Forged requests naming ever new paths on an allowed host cost a few fetches, then 503."""
    verifier = make(https_client, fetch_burst=2, fetch_rate=0.01)
    paths = [f"/certs/forged-{uuid.uuid4()}" for _ in range(6)]
    outcomes = []
    for path in paths:
        try:
            await verifier.verify(BODY, signed(signing[0], cert_server.base_url + path), NOW)
        except (BadSignature, Overloaded) as exc:
            outcomes.append(type(exc).__name__)
    assert outcomes == ["BadSignature"] * 2 + ["Overloaded"] * 4
    assert sum(cert_server.hits[path] for path in paths) == 2
    with pytest.raises(Overloaded, match="too many PayPal certificate fetches") as caught:
        await verifier.verify(BODY, signed(signing[0], cert_server.base_url + paths[-1]), NOW)
    assert caught.value.retry_after == 100 and caught.value.status == 503
