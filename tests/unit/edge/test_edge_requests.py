"""Bad input gets a clear answer, before anything reaches Kafka (no broker in these tests)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from services.cli.sample import signed_sample
from services.edge.app import create_app
from tests.support.edge import SECRETS, edge_settings

SECRET_VALUES = list(SECRETS.values())


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # No lifespan: the producer never connects, so even a perfect webhook cannot be stored.
    settings = edge_settings(
        "127.0.0.1:1",
        edge={"max_body_bytes": 2048},
        providers={"limited": {"kind": "github", "secrets": ["s"], "admission": {"rate": 0.5, "burst": 2}}},
    )
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge") as c:
        yield c


def assert_clean_error(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    body: dict[str, str] = response.json()
    assert body["error"] == code
    assert body["message"]
    for secret in SECRET_VALUES:  # never echo a secret
        assert secret not in response.text
    return body


async def test_wrong_signature_is_401(client: httpx.AsyncClient) -> None:
    body, headers = signed_sample("stripe", "whsec_wrong")
    assert_clean_error(
        await client.post("/webhooks/stripe", content=body, headers=headers), 401, "bad_signature"
    )


async def test_missing_signature_is_401(client: httpx.AsyncClient) -> None:
    body, headers = signed_sample("github", SECRETS["github"])
    del headers["X-Hub-Signature-256"]
    assert_clean_error(
        await client.post("/webhooks/github", content=body, headers=headers), 401, "bad_signature"
    )


async def test_stale_timestamp_is_401(client: httpx.AsyncClient) -> None:
    from services.edge.verifiers.signers import sample_body, sign_stripe

    body = sample_body("stripe")
    headers = sign_stripe(body, SECRETS["stripe"], timestamp=1_600_000_000)
    response = await client.post("/webhooks/stripe", content=body, headers=headers)
    assert_clean_error(response, 401, "stale_timestamp")


async def test_malformed_body_is_400(client: httpx.AsyncClient) -> None:
    from services.edge.verifiers.signers import sign_github

    body = b"{not json"
    headers = sign_github(body, SECRETS["github"])
    assert_clean_error(await client.post("/webhooks/github", content=body, headers=headers), 400, "malformed")


async def test_missing_event_id_is_400(client: httpx.AsyncClient) -> None:
    from services.edge.verifiers.signers import sign_stripe

    body = json.dumps({"type": "charge.succeeded", "object": "event"}).encode()
    headers = sign_stripe(body, SECRETS["stripe"], timestamp=int(__import__("time").time()))
    assert_clean_error(await client.post("/webhooks/stripe", content=body, headers=headers), 400, "malformed")


async def test_declared_size_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    body, headers = signed_sample("stripe", SECRETS["stripe"])
    big = body + b" " * 4096
    response = await client.post("/webhooks/stripe", content=big, headers=headers)
    assert_clean_error(response, 413, "too_large")


async def test_streamed_body_over_the_limit_is_413_while_reading(client: httpx.AsyncClient) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(100):  # 100 KiB offered, no Content-Length
            sent += 1
            yield b"x" * 1024

    response = await client.post(
        "/webhooks/stripe", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_clean_error(response, 413, "too_large")


async def test_unknown_provider_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/webhooks/nosuch", content=b"{}", headers={"Content-Type": "application/json"}
    )
    body = assert_clean_error(response, 404, "unknown_provider")
    assert "nosuch" in body["message"]


async def test_wrong_content_type_is_415(client: httpx.AsyncClient) -> None:
    body, headers = signed_sample("stripe", SECRETS["stripe"])
    headers["Content-Type"] = "text/xml"
    response = await client.post("/webhooks/stripe", content=body, headers=headers)
    body_json = assert_clean_error(response, 415, "unsupported_media_type")
    assert "application/json" in body_json["message"]


async def test_admission_limit_is_429_with_retry_after(client: httpx.AsyncClient) -> None:
    statuses = []
    for _ in range(4):
        body, headers = signed_sample("github", "s")
        response = await client.post("/webhooks/limited", content=body, headers=headers)
        statuses.append(response.status_code)
    # burst 2 admitted (then 503: no Kafka in this test), the rest refused before any work
    assert statuses == [503, 503, 429, 429]
    assert response.headers["Retry-After"] == "2"
    assert response.json()["error"] == "rate_limited"


async def test_valid_webhook_without_kafka_is_503_never_2xx(client: httpx.AsyncClient) -> None:
    body, headers = signed_sample("shopify", SECRETS["shopify"])
    response = await client.post("/webhooks/shopify", content=body, headers=headers)
    assert_clean_error(response, 503, "unavailable")
    assert int(response.headers["Retry-After"]) >= 1


async def test_health_and_readiness_without_kafka(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["kafka"] == "unreachable"


def metric_value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_count_rejections_by_reason(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    body, headers = signed_sample("stripe", "whsec_wrong")
    for _ in range(3):
        await client.post("/webhooks/stripe", content=body, headers=headers)
    after = (await client.get("/metrics")).text
    name = "breakwater_edge_rejected_total"
    labels = {"provider": "stripe", "reason": "bad_signature"}
    assert metric_value(after, name, **labels) - metric_value(before, name, **labels) == 3
    assert "breakwater_edge_accept_latency_seconds_bucket" in after


async def test_other_methods_and_deeper_paths_still_get_the_routers_answers(
    client: httpx.AsyncClient,
) -> None:
    """Only POST is a webhook; deeper or empty paths are not a provider."""
    wrong_method = await client.get("/webhooks/stripe")
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
    assert (await client.post("/webhooks/stripe/extra", content=b"{}")).status_code == 404
    assert (await client.post("/webhooks/", content=b"{}")).status_code == 404
    assert (await client.get("/healthz")).json()["status"] == "alive"


async def test_a_trailing_slash_is_the_same_webhook_endpoint_never_a_redirect(
    client: httpx.AsyncClient,
) -> None:
    """Providers do not follow redirects on POST: a 307 would lose every webhook sent there."""
    body, headers = signed_sample("stripe", "whsec_wrong")
    slash = await client.post("/webhooks/stripe/", content=body, headers=headers)
    assert_clean_error(slash, 401, "bad_signature")  # verified like any webhook
    body, headers = signed_sample("shopify", SECRETS["shopify"])
    slash = await client.post("/webhooks/shopify/", content=body, headers=headers)
    assert_clean_error(slash, 503, "unavailable")  # valid; only the missing broker stops it
    json_type = {"Content-Type": "application/json"}
    nosuch = await client.post("/webhooks/nosuch/", content=b"{}", headers=json_type)
    assert_clean_error(nosuch, 404, "unknown_provider")
    for path in ("/healthz/", "/webhooks/stripe//", "/metrics/"):
        answer = await client.request("POST" if "webhooks" in path else "GET", path, content=b"")
        assert answer.status_code == 404, (path, answer.status_code)
