"""Drive a throwaway pipeline from outside: its settings, its topics, signed envelopes on its inbound
topic, and workers as subprocesses.

Each run gets its own ``topic_prefix`` and ``app_id``, so pipelines share one broker without seeing each
other. The benchmarks own this module (``bench_pipeline`` puts a million envelopes through it) and the
stream tests import it (through ``tests/support/pipeline.py``), so there is one copy and the benchmarks
import nothing from ``tests/``. It is not in ``services/``: no deployment of Breakwater needs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.envelope import WebhookEnvelope
from schemas.producer import encode_envelope
from schemas.signing import EnvelopeSigner
from schemas.topics import PipelineTopics
from services.config import BreakwaterSettings, load_settings
from services.kafka import clients
from services.kafka.admin import ensure_topics
from streams.topics import catalogue, pipeline_topics

__all__ = [
    "FAST_TIERS",
    "PROVIDERS",
    "REPO",
    "WorkerProcess",
    "create_topics",
    "envelope",
    "pipeline_config",
    "produce",
    "settings_of",
]

REPO = Path(__file__).resolve().parents[1]
PROVIDERS = {"stripe": {"secrets": ["whsec_test"]}, "github": {"secrets": ["gh-test"]}}
FAST_TIERS = [{"name": "t1", "delay_seconds": 0.3}, {"name": "t2", "delay_seconds": 0.6}]


def pipeline_config(bootstrap: str, name: str, state: Path, **pipeline: Any) -> dict[str, Any]:
    """A plain config dict (JSON-able) for one test's pipeline; ``pipeline`` overrides its section."""
    section: dict[str, Any] = {
        "app_id": name,
        "topic_prefix": f"{name}.",
        "state_dir": str(state),
        "retry_tiers": FAST_TIERS,
        "retry_jitter": 0.1,
        "transaction_timeout_ms": 10_000,
        "session_timeout_ms": 6_000,
    }
    section.update(pipeline)
    return {
        "environment": "test",
        "kafka": {"bootstrap": bootstrap},
        "topics": {"partitions": 4},
        "providers": PROVIDERS,
        "pipeline": section,
    }


def settings_of(config: dict[str, Any], **pipeline: Any) -> BreakwaterSettings:
    if pipeline:
        config = {**config, "pipeline": {**config["pipeline"], **pipeline}}
    return load_settings(**config)


def envelope(
    provider: str, event_id: str, event_type: str = "charge.succeeded", body: Any = None
) -> WebhookEnvelope:
    payload = json.dumps(body if body is not None else {"id": event_id, "type": event_type}).encode()
    return WebhookEnvelope(
        provider=provider,
        provider_kind=provider,
        event_id=event_id,
        event_type=event_type,
        received_at=datetime.now(UTC),
        body=payload,
        content_type="application/json",
        edge_instance="test",
    )


async def create_topics(settings: BreakwaterSettings) -> PipelineTopics:
    await ensure_topics(settings.kafka, catalogue(settings))
    return pipeline_topics(settings)


async def produce(settings: BreakwaterSettings, envelopes: Iterable[WebhookEnvelope]) -> int:
    """Put signed envelopes on the pipeline's inbound topic (as the edge would); returns the count."""
    topics = pipeline_topics(settings)
    signer = EnvelopeSigner.of(settings.signing)
    producer = clients.producer(settings.kafka, linger_ms=20)
    await producer.start()
    sent = 0
    try:
        pending = []
        for item in envelopes:
            key, value, headers = encode_envelope(item, signer)
            pending.append(await producer.send(topics.inbound, value, key=key, headers=headers))
            sent += 1
        await producer.flush()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


class WorkerProcess:
    """``python -m streams.worker`` in a subprocess, configured by environment variables."""

    def __init__(self, config: dict[str, Any], worker_id: str, log: Path) -> None:
        self.env = {**os.environ, "PYTHONPATH": str(REPO)}
        for section, value in config.items():
            if section == "pipeline":
                value = {**value, "worker_id": worker_id}
            self.env[f"BREAKWATER_{section.upper()}"] = (
                json.dumps(value) if not isinstance(value, str) else value
            )
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.worker"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
