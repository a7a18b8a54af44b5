"""The operator HTTP API in process (httpx.ASGITransport) against the real broker."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

from services.operators.api import create_operator_app
from services.operators.config import OperatorSettings
from services.operators.filters import DlqFilter
from services.operators.views import to_json
from tests.integration.operators.seed import TOKEN, Seeded
from tests.unit.operators.deadletters import BASE

PROTECTED = [
    ("GET", "/dlq"),
    ("GET", "/dlq/counts"),
    ("GET", "/dlq/some-id"),
    ("POST", "/dlq/replay"),
    ("POST", "/dlq/discard"),
    ("GET", "/stats"),
]


def client(seeded: Seeded, token: str | None = TOKEN) -> httpx.AsyncClient:
    config = OperatorSettings(token=SecretStr(token) if token else None)
    app = create_operator_app(seeded.settings, config, operators=seeded.ops)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://operators")


BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ],
    ids=["none", "wrong", "longer", "basic", "bare"],
)
async def test_without_the_right_token_every_protected_route_is_401(
    seeded: Seeded, headers: dict[str, str]
) -> None:
    async with client(seeded) as http:
        for method, path in PROTECTED:
            response = await http.request(method, path, headers=headers, json={"ids": [seeded.dead[0].id]})
            assert response.status_code == 401, (method, path)
            assert response.json() == {"error": "unauthorized"}
    assert len((await seeded.ops.listing(DlqFilter(state="replayed"))).items) == 0


async def test_no_configured_token_refuses_everyone(seeded: Seeded) -> None:
    async with client(seeded, token=None) as http:
        for headers in ({}, {"Authorization": "Bearer "}, BEARER):
            assert (await http.get("/dlq", headers=headers)).status_code == 401


async def test_health_is_open_and_ready_sees_the_broker(seeded: Seeded) -> None:
    async with client(seeded) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["brokers"] == 1


async def test_with_the_token_the_api_serves_the_index_and_replays_once(seeded: Seeded) -> None:
    ops = seeded.ops
    async with client(seeded) as http:
        listing = await http.get("/dlq", params={"provider": "stripe", "limit": "100"}, headers=BEARER)
        assert listing.status_code == 200
        assert listing.json() == to_json(await ops.listing(DlqFilter(provider="stripe", limit=100)))
        assert listing.json()["count"] == 10

        counts = await http.get("/dlq/counts", headers=BEARER)
        assert counts.json() == {"http_500": 9, "http_400": 3, "timeout": 2}

        target = seeded.dead[0]
        shown = await http.get(f"/dlq/{target.id}", headers=BEARER)
        assert shown.json() == to_json(await ops.show(target.id))
        assert (await http.get("/dlq/not-there", headers=BEARER)).status_code == 404

        bad = await http.get("/dlq", params={"since": "last tuesday"}, headers=BEARER)
        assert bad.status_code == 400 and "ISO 8601" in bad.json()["error"]
        unbounded = await http.post("/dlq/replay", json={}, headers=BEARER)
        assert unbounded.status_code == 400

        criteria = {
            "provider": "github",
            "error_class": "http_500",
            "since": seeded.hours(2),
            "by": "api-user",
        }
        dry = await http.post("/dlq/replay", json={**criteria, "dry_run": True}, headers=BEARER)
        expected = {
            d.id
            for d in seeded.dead
            if d.envelope.provider == "github"
            and d.final_error.error_class == "http_500"
            and d.dead_at >= BASE + timedelta(hours=2)
        }
        assert set(dry.json()["done"]) == expected and len(expected) == 2
        assert (await seeded.read(ops.topics.ready("github"))).records == []

        done = await http.post("/dlq/replay", json=criteria, headers=BEARER)
        assert set(done.json()["done"]) == expected and done.json()["failed"] == []
        again = await http.post("/dlq/replay", json=criteria, headers=BEARER)
        assert again.json()["done"] == [] and set(again.json()["skipped"]) == expected
        assert len((await seeded.read(ops.topics.ready("github"))).records) == 2

        discarded = await http.post(
            "/dlq/discard", json={"ids": [target.id], "notes": "test"}, headers=BEARER
        )
        assert discarded.json()["done"] == [target.id]
        after = await http.get("/dlq", params={"limit": "100"}, headers=BEARER)
        assert after.json()["count"] == 13

        stats = await http.get("/stats", params={"since": seeded.hours(-1)}, headers=BEARER)
        assert stats.json()["dead_by_provider"] == {"github": 4, "stripe": 10}
