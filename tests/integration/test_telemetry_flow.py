"""Telemetry end to end: one webhook is one trace from the edge to the HTTP destination, and the
counters and histograms at /metrics move when events flow (edge and worker on a real broker)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from services.cli.sample import signed_sample
from services.kafka.local import free_ports
from services.telemetry import prometheus_text
from tests.integration.streams.http_sink import Sink, serve_sink
from tests.support.edge import SECRETS, SIGNING_KEY, edge_settings, running_edge
from tests.support.pipeline import create_topics, pipeline_config, running_worker, settings_of
from tests.support.waiting import until

pytestmark = pytest.mark.kafka
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_a_trace_id_from_the_edge_reaches_the_destination_and_metrics_move(
    kafka_bootstrap: str, unique: Callable[[str], str], tmp_path: Path
) -> None:
    (probe_port,) = free_ports(1)
    with serve_sink(Sink(lambda key, seen: (200, {}))) as sink:
        config = pipeline_config(
            kafka_bootstrap,
            unique("otel"),
            tmp_path / "state",
            destinations={"events": {"kind": "kafka"}, "hook": {"kind": "http", "url": sink.url}},
            routes=[{"destinations": ["events", "hook"]}],
            probe_port=probe_port,
        )
        config["providers"] = {"stripe": {"secrets": [SECRETS["stripe"]]}}
        config["signing"] = {"active_key_id": "t1", "keys": {"t1": SIGNING_KEY.decode()}}
        settings = settings_of(config)
        topics = await create_topics(settings)
        before = prometheus_text()[0].decode()
        edge = edge_settings(kafka_bootstrap, providers=config["providers"])
        async with running_edge(edge, topics.inbound) as running, running_worker(settings):
            body, headers = signed_sample("stripe", SECRETS["stripe"], event_id="evt_traced")
            headers["traceparent"] = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
            async with httpx.AsyncClient(base_url=running.url) as client:
                assert (
                    await client.post("/webhooks/stripe", content=body, headers=headers)
                ).status_code == 202
            await until(lambda: "stripe:evt_traced" in sink.delivered(), timeout=60, what="the delivery")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{probe_port}") as probes:
                assert (await probes.get("/healthz")).status_code == 200
                assert (await probes.get("/readyz")).status_code == 200
                scraped = (await probes.get("/metrics")).text

    delivered = next(h for h in sink.requests if h["idempotency-key"] == "stripe:evt_traced")
    _, trace_id, span_id, flags = delivered["traceparent"].split("-")
    assert trace_id == TRACE_ID and span_id != "00f067aa0ba902b7" and flags == "01"

    after = prometheus_text()[0].decode()
    assert scraped.count("breakwater_pipeline_delivered_total") > 0
    assert metric(scraped, "breakwater_dedup_memory_bytes") > 0  # the RocksDB part of the worker's RSS
    for name, labels in [
        ("breakwater_edge_accepted_total", {"provider": "stripe"}),
        ("breakwater_edge_accept_latency_seconds_count", {"outcome": "accepted"}),
        ("breakwater_pipeline_new_total", {}),
        ("breakwater_pipeline_delivered_total", {"destination": "hook"}),
        ("breakwater_pipeline_delivered_total", {"destination": "events"}),
        ("breakwater_pipeline_end_to_end_latency_seconds_count", {}),
    ]:
        assert metric(after, name, **labels) >= metric(before, name, **labels) + 1, name
