"""The operator API's door, without a broker: refusals come before any Kafka work and say nothing."""

from __future__ import annotations

import importlib
import pkgutil

import httpx
import pytest
from pydantic import SecretStr

import services.operators
from schemas.topics import PipelineTopics
from services.config import load_settings
from services.operators.api import create_operator_app
from services.operators.config import OperatorSettings
from services.operators.service import Operators

TOKEN = "s3cret-operator-token"
NOWHERE = Operators(bootstrap="127.0.0.1:9", topics=PipelineTopics())  # nothing listens on port 9


def client(token: str | None = TOKEN) -> httpx.AsyncClient:
    config = OperatorSettings(token=SecretStr(token) if token else None)
    app = create_operator_app(load_settings(), config, operators=NOWHERE)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://operators")


@pytest.mark.parametrize("path", ["/dlq", "/dlq/counts", "/dlq/abc", "/stats"])
@pytest.mark.parametrize(
    "authorization", [None, "Bearer nope", f"Bearer {TOKEN[:-1]}", f"bearer{TOKEN}", f"Token {TOKEN}"]
)
async def test_wrong_or_missing_token_is_a_bare_401(path: str, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with client() as http:
        response = await http.get(path, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}
    assert response.headers["www-authenticate"] == "Bearer"


async def test_posts_are_refused_before_reading_the_body() -> None:
    async with client() as http:
        for path in ("/dlq/replay", "/dlq/discard"):
            response = await http.post(path, content=b"not even json")
            assert response.status_code == 401


async def test_unset_token_refuses_even_an_empty_bearer() -> None:
    async with client(token=None) as http:
        assert (await http.get("/dlq", headers={"Authorization": "Bearer "})).status_code == 401
        assert (await http.get("/healthz")).status_code == 200


async def test_bad_requests_with_the_token_are_400_with_the_reason() -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with client() as http:
        bad_time = await http.get("/dlq", params={"since": "soon"}, headers=bearer)
        assert bad_time.status_code == 400 and "ISO 8601" in bad_time.json()["error"]
        bad_state = await http.get("/dlq", params={"state": "lost"}, headers=bearer)
        assert bad_state.status_code == 400 and "state must be one of" in bad_state.json()["error"]
        not_json = await http.post("/dlq/replay", content=b"{", headers=bearer)
        assert not_json.status_code == 400 and not_json.json()["error"].startswith("body is not strict JSON")
        bad_ids = await http.post("/dlq/replay", json={"ids": "abc"}, headers=bearer)
        assert bad_ids.status_code == 400


async def test_unreachable_kafka_is_503_not_ready() -> None:
    async with client() as http:
        assert (await http.get("/readyz")).status_code == 503


def test_token_takes_secret_references(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPS_TOKEN_FOR_TEST", "from-env")
    config = OperatorSettings.model_validate({"token": "env:OPS_TOKEN_FOR_TEST"})
    assert config.token is not None and config.token.get_secret_value() == "from-env"
    assert "from-env" not in repr(config)


def test_every_module_exports_what_it_names() -> None:
    for info in pkgutil.iter_modules(services.operators.__path__):
        module = importlib.import_module(f"services.operators.{info.name}")
        exported = getattr(module, "__all__", None)
        assert exported, f"services.operators.{info.name} has no __all__"
        missing = [name for name in exported if not hasattr(module, name)]
        assert not missing, (info.name, missing)
