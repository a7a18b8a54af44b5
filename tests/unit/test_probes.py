"""The probe server answers on a real port and leaves the process's signal handling alone."""

from __future__ import annotations

import signal

import httpx

from services.kafka.local import free_ports
from services.probes import serving_probes
from tests.support.waiting import until


async def test_probes_answer_and_report_readiness() -> None:
    state = {"ready": False}

    async def ready() -> tuple[bool, dict[str, object]]:
        return state["ready"], {"partitions": 3}

    handler_before = signal.getsignal(signal.SIGTERM)
    (port,) = free_ports(1)
    async with serving_probes("worker", "127.0.0.1", port, ready) as server:
        await until(lambda: server.started, timeout=10, what="the probe server")
        assert signal.getsignal(signal.SIGTERM) is handler_before
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).json()["process"] == "worker"
            not_ready = await client.get("/readyz")
            assert not_ready.status_code == 503 and not_ready.json()["partitions"] == 3
            state["ready"] = True
            assert (await client.get("/readyz")).status_code == 200
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200 and "text/plain" in metrics.headers["content-type"]
