"""Edge throughput and latency for signed Stripe-style webhooks, against a bare ASGI app, same run.

    .venv/bin/python -m benchmarks.bench_edge [--seconds 10] [--connections 50]

Both servers run under the same uvicorn (uvloop + httptools, ``--processes`` each) in child processes; the
bare app answers 202 without work, the edge verifies the Stripe signature, builds and signs the
envelope and waits for Kafka's acks=all before its 202. A local broker is started for the run unless
BREAKWATER_KAFKA__BOOTSTRAP names one. Prints figures and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvloop

from benchmarks.cpu import CpuMeter, CpuUse
from benchmarks.figures import record
from benchmarks.loadgen import LoadResult, render_post, run_load
from services.cli.sample import signed_sample
from services.config import bootstrap_from_env, load_settings
from services.flood.shutdown import SigtermUnwinds
from services.kafka.admin import ensure_topics
from services.kafka.local import free_ports, start_fresh_broker

STRIPE_SECRET = "whsec_bench_secret"


def start_server(
    command: list[str], port: int, env: dict[str, str], ready_path: str
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"{command} exited with {process.returncode}")
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{command} did not become ready")


def report(name: str, result: LoadResult) -> str:
    statuses = ", ".join(f"{code}: {count}" for code, count in sorted(result.statuses.items()))
    return (
        f"{name:<10} {result.rate:9.0f} req/s   p50 {result.percentile(0.5) * 1000:6.2f} ms   "
        f"p99 {result.percentile(0.99) * 1000:7.2f} ms   [{statuses}; connection errors {result.errors}]"
    )


def cpu_report(name: str, use: CpuUse, rate: float) -> str:
    """Where the cores went: CPU per request of each process, and how many of the cores were busy."""
    each = "   ".join(f"{who} {us:5.0f} us" for who, us in use.per_request_us(rate).items())
    return f"{name:<10} CPU per request: {each}   ({use.cores_busy:.2f} of {os.cpu_count()} cores busy)"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--processes", type=int, default=1, help="edge processes (bare ASGI gets as many)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-edge-"))
    broker = None
    bootstrap = bootstrap_from_env()
    if not bootstrap:
        broker = start_fresh_broker(work / "kafka", heap="1g")
        bootstrap = broker.bootstrap
    config = work / "bench.toml"
    config.write_text(f'[providers.stripe]\nsecrets = ["{STRIPE_SECRET}"]\n')
    settings = load_settings(config, kafka={"bootstrap": bootstrap})
    asyncio.run(ensure_topics(settings.kafka, settings.topic_catalogue()))

    bare_port, edge_port = free_ports(2)
    env = {**os.environ, "BREAKWATER_CONFIG": str(config), "BREAKWATER_KAFKA__BOOTSTRAP": bootstrap}
    env["BREAKWATER_LOG_LEVEL"] = "WARNING"
    requests = []
    for i in range(2000):
        body, headers = signed_sample("stripe", STRIPE_SECRET, event_id=f"evt_bench_{i}")
        requests.append(render_post(f"127.0.0.1:{edge_port}", "/webhooks/stripe", body, headers))
    bare = start_server(
        [sys.executable, "-m", "benchmarks.bare_asgi", str(bare_port), str(args.processes)],
        bare_port,
        env,
        "/webhooks/stripe",
    )
    edge = start_server(
        [
            sys.executable,
            "-m",
            "services.cli.main",
            "edge",
            "--port",
            str(edge_port),
            "--processes",
            str(args.processes),
        ],
        edge_port,
        env,
        "/readyz",
    )
    try:
        uvloop.install()
        load = {"connections": args.connections, "seconds": args.seconds}
        loadgen = {"load generator": os.getpid()}
        meter = CpuMeter({"server": bare.pid}, alone=loadgen)
        meter.start()
        bare_result = asyncio.run(run_load("127.0.0.1", bare_port, requests, **load))
        bare_cpu = meter.stop()
        broker_pid = broker.pid() if broker is not None else None
        meter = CpuMeter({"edge": edge.pid, **({"broker": broker_pid} if broker_pid else {})}, alone=loadgen)
        meter.start()
        edge_result = asyncio.run(run_load("127.0.0.1", edge_port, requests, **load))
        edge_cpu = meter.stop()
    finally:
        for process in (bare, edge):
            process.terminate()
            process.wait(timeout=30)
        if broker is not None:
            broker.stop()
    print(
        f"edge benchmark: {args.processes} process(es) each, {args.connections} keep-alive connections, "
        f"{args.seconds:g}s each, Stripe-signed 1 KiB, acks=all to a broker on the same machine"
    )
    edge_us = edge_cpu.per_request_us(edge_result.rate)
    record(
        "edge",
        edge_cpu_us=round(edge_us["edge"]),
        cores_busy=round(edge_cpu.cores_busy, 2),
        accepted_per_s=round(edge_result.rate),
        p50_ms=round(edge_result.percentile(0.5) * 1000, 2),
        p99_ms=round(edge_result.percentile(0.99) * 1000, 2),
        bare_per_s=round(bare_result.rate),
        bare_p99_ms=round(bare_result.percentile(0.99) * 1000, 2),
        non_202=edge_result.completed - edge_result.statuses.get(202, 0),
        connection_errors=edge_result.errors,
    )
    print(report("bare ASGI", bare_result))
    print(report("edge", edge_result))
    print(cpu_report("bare ASGI", bare_cpu, bare_result.rate))
    print(cpu_report("edge", edge_cpu, edge_result.rate))
    print(
        f"ratio      throughput {edge_result.rate / bare_result.rate:6.2f}x of bare   "
        f"p99 {edge_result.percentile(0.99) / bare_result.percentile(0.99):6.1f}x of bare"
    )


if __name__ == "__main__":
    with SigtermUnwinds():  # a ``kill`` still runs the finally blocks that stop the broker
        main()
