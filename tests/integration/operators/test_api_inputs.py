"""Generated requests against the operator API in process, on the real broker (issue #13, item 8).

Only 200, 400 and 401 come back, and a 200 replay or discard touched only dead letters that match every
filter the body gave: unknown names are refused, never dropped. tests/unit/operators/test_api_inputs.py
runs the same strategies, many more of them, against an in-memory DLQ.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from services.operators.api import FIELDS, create_operator_app
from services.operators.config import OperatorSettings
from tests.integration.operators.seed import TOKEN, Seeded, seed
from tests.unit.operators.test_api_inputs import BODIES, NAMES, TIMES

pytestmark = pytest.mark.kafka
BEARER = {"Authorization": f"Bearer {TOKEN}"}
GENERATED = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def world(kafka_bootstrap: str, unique: Callable[[str], str]) -> Seeded:
    return asyncio.run(seed(kafka_bootstrap, unique("gen")))


def call(world: Seeded, method: str, path: str, **options: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        app = create_operator_app(
            world.settings, OperatorSettings(token=SecretStr(TOKEN)), operators=world.ops
        )
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://operators") as http:
            return await http.request(method, path, headers=BEARER, **options)

    return asyncio.run(go())


def matches(body: dict[str, Any], world: Seeded, ident: str) -> bool:
    dead = next(d for d in world.dead if d.id == ident)
    wanted = {
        "provider": dead.envelope.provider,
        "event_type": dead.envelope.event_type,
        "error_class": dead.final_error.error_class,
        "destination": dead.destination,
    }
    if any(body.get(name) not in (None, "") and body[name] != value for name, value in wanted.items()):
        return False
    ids = [i for i in body.get("ids") or [] if i]
    return not ids or any(ident.startswith(i) for i in ids)


@GENERATED
@given(path=st.sampled_from(["/dlq/replay", "/dlq/discard"]), body=BODIES)
def test_generated_action_bodies_on_the_real_broker(world: Seeded, path: str, body: dict[str, Any]) -> None:
    response = call(world, "POST", path, content=json.dumps(body).encode())
    assert response.status_code in (200, 400), (response.status_code, response.text)
    unknown = sorted(set(body) - set(FIELDS["replay" if path == "/dlq/replay" else "discard"]))
    if unknown:
        assert response.status_code == 400 and response.json()["unknown"] == unknown
    if response.status_code == 200:
        touched = response.json()["done"] + response.json()["skipped"]
        assert all(matches(body, world, ident) for ident in touched), (body, touched)


@GENERATED
@given(
    path=st.sampled_from(["/dlq", "/dlq/counts", "/stats"]),
    query=st.lists(st.tuples(st.one_of(NAMES, st.text(max_size=8)), st.one_of(TIMES, st.text())), max_size=4),
)
def test_generated_query_strings_on_the_real_broker(
    world: Seeded, path: str, query: list[tuple[str, str]]
) -> None:
    response = call(world, "GET", path, params=query)
    assert response.status_code in (200, 400), (response.status_code, response.text)
    if response.status_code == 200 and path == "/dlq":
        given_filters = dict(query)
        assert all(matches(given_filters, world, item["id"]) for item in response.json()["items"])
