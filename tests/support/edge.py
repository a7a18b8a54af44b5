"""Run the real edge under uvicorn on a free port, in the test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from schemas.signing import EnvelopeSigner
from services.config import BreakwaterSettings, load_settings
from services.edge.app import create_app
from services.edge.ingest import Edge
from services.edge.publisher import EnvelopeProducer
from services.http_server import BoundedConfig, ServerLimits
from services.kafka.local import free_ports
from tests.support.waiting import until

SECRETS = {
    "stripe": "whsec_test_stripe",
    "github": "test-github-secret",
    "shopify": "test-shopify-secret",
    "standard": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}
SIGNING_KEY = b"test-signing-key"


def edge_settings(bootstrap: str, **overrides: Any) -> BreakwaterSettings:
    """Settings with the HMAC providers configured and ``overrides`` on top."""
    values: dict[str, Any] = {
        "environment": "test",
        "kafka": {"bootstrap": bootstrap, "request_timeout_ms": 5000},
        "signing": {"active_key_id": "t1", "keys": {"t1": SIGNING_KEY.decode()}},
        "providers": {name: {"secrets": [secret]} for name, secret in SECRETS.items()},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return load_settings(None, **values)


def envelope_signer() -> EnvelopeSigner:
    return EnvelopeSigner(keys={"t1": SIGNING_KEY}, active_key_id="t1")


@dataclass(frozen=True)
class RunningEdge:
    url: str
    edge: Edge


@contextlib.asynccontextmanager
async def running_edge(settings: BreakwaterSettings, topic: str) -> AsyncIterator[RunningEdge]:
    """Serve the edge (producing to ``topic``) on a free port until the block ends."""
    producer = EnvelopeProducer(
        settings.kafka,
        envelope_signer(),
        topic=topic,
        linger_ms=1,
        request_timeout_ms=settings.kafka.request_timeout_ms,
    )
    app = create_app(settings, producer=producer)
    (port,) = free_ports(1)
    config = BoundedConfig(  # the server `breakwater edge` runs, with the settings' limits
        app,
        ServerLimits.from_edge(settings.edge),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_keep_alive=settings.edge.keep_alive_seconds,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started or task.done(), timeout=10, what="uvicorn to listen")
    if task.done():
        task.result()  # raises what stopped the server from starting
    # As a load balancer would, send traffic only once the edge reaches Kafka.
    await until(lambda: app.state.edge.publisher.connected, timeout=30, what="the edge to reach Kafka")
    try:
        yield RunningEdge(f"http://127.0.0.1:{port}", app.state.edge)
    finally:
        server.should_exit = True
        await task
