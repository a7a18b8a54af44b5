"""Everything a flood needs, brought up by itself and torn down at the end.

A local broker on free ports in a temp dir (unless a bootstrap is given), a generated TOML config with
a unique topic prefix and app id, the topics, and the edge, a worker and the destination simulator as
child processes. Children get the generated config and no other ``BREAKWATER_*`` variable, so a
developer's environment cannot point a flood at their own pipeline's topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from services.config import BOOTSTRAP_ENV, BreakwaterSettings, KafkaSettings, load_settings
from services.errors import BreakwaterError
from services.flood.scenario import SECRETS, Scenario
from services.flood.shutdown import stop_process
from services.flood.tomlgen import dumps
from services.flood.traffic import sign
from services.kafka import clients
from services.kafka.admin import ensure_topics
from services.kafka.local import LocalKafka, free_ports, start_fresh_broker
from streams.topics import catalogue, pipeline_topics

READY_TIMEOUT = 90.0


def pipeline_config(
    scenario: Scenario, bootstrap: str, edge_port: int, sim_port: int, home: Path, worker_port: int
) -> dict[str, Any]:
    """The settings the edge and worker run with, as a TOML-ready dict."""
    run = uuid.uuid4().hex[:8]
    sim = f"http://127.0.0.1:{sim_port}"
    destinations: dict[str, Any] = {"events": {"kind": "kafka"}}
    routes: list[dict[str, Any]] = [{"provider": "*", "destinations": ["events"]}]
    for dest in scenario.destinations:
        destinations[dest.name] = {
            "kind": "http",
            "url": f"{sim}/{dest.name}",
            "concurrency": dest.concurrency,
            "max_attempts": dest.max_attempts,
            "timeout_seconds": max(10.0, dest.delay_seconds * 3),
        }
        for provider, patterns in dest.routes.items():
            routes.append({"provider": provider, "event_types": patterns, "destinations": [dest.name]})
    return {
        "environment": "dev",
        "log_level": "WARNING",
        "kafka": {"bootstrap": bootstrap},
        "edge": {"host": "127.0.0.1", "port": edge_port},
        "signing": {"active_key_id": "flood", "keys": {"flood": f"flood-signing-{run}"}},
        "providers": {name: {"secrets": [secret]} for name, secret in SECRETS.items()},
        "pipeline": {
            "app_id": f"flood-{run}",
            "topic_prefix": f"flood-{run}.",
            "state_dir": str(home / "state"),
            "probe_port": worker_port,  # its /metrics: the monitor reads the dedup table's memory there
            "max_attempts": 3,
            "retry_tiers": [{"name": n, "delay_seconds": s} for n, s in scenario.retry_tiers.items()],
            "destinations": destinations,
            "routes": routes,
        },
    }


@dataclass
class Stack:
    """The running pieces; :meth:`close` stops what this flood started, children first."""

    home: Path
    settings: BreakwaterSettings
    config_path: Path
    sim_url: str
    broker: LocalKafka | None = None
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: list[IO[bytes]] = field(default_factory=list)
    probe_key: str | None = None

    @property
    def kafka(self) -> KafkaSettings:
        """The cluster with its security settings (``BREAKWATER_KAFKA__*``), as every flood client uses it."""
        return self.settings.kafka

    @property
    def worker_metrics_url(self) -> str:
        pipeline = self.settings.pipeline
        return f"http://{pipeline.probe_host}:{pipeline.probe_port}/metrics"

    @property
    def edge(self) -> tuple[str, int]:
        return self.settings.edge.host, self.settings.edge.port

    def pids(self) -> dict[str, int]:
        found = {name: child.pid for name, child in self.children.items() if child.poll() is None}
        if self.broker is not None and (pid := self.broker.pid()) is not None:
            found["broker"] = pid
        return found

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        # The flood's own config, and the cluster's security settings from the environment (not its address).
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("BREAKWATER_") or _security_variable(k)
        }
        env["BREAKWATER_CONFIG"] = str(self.config_path)
        log = (self.home / f"{name}.log").open("ab")
        self.logs.append(log)
        child = subprocess.Popen(
            [sys.executable, *args], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.children[name] = child
        return child

    def stop_child(self, name: str, timeout: float = 30.0) -> None:
        child = self.children.get(name)
        if child is not None:
            stop_process(child, timeout)

    def close(self) -> None:
        for name in list(self.children):
            self.stop_child(name)
        for log in self.logs:
            log.close()
        if self.broker is not None:
            self.broker.stop()

    def log_tail(self, name: str, lines: int = 20) -> str:
        text = (self.home / f"{name}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def _security_variable(name: str) -> bool:
    """``BREAKWATER_KAFKA__SECURITY_PROTOCOL`` and the like: how to reach the cluster, not which one."""
    return (
        name.startswith("BREAKWATER_KAFKA__")
        and name != BOOTSTRAP_ENV
        and not name.startswith("BREAKWATER_KAFKA__LOCAL__")
    )


def build_stack(scenario: Scenario, home: Path, bootstrap: str | None) -> Stack:
    """Broker (unless given), config and topics; the processes start in :func:`start_processes`."""
    broker = None if bootstrap else start_fresh_broker(home, attempts=2)
    try:
        return _configure(scenario, home, bootstrap, broker)
    except BaseException:
        if broker is not None:
            broker.stop()
        raise


def _configure(scenario: Scenario, home: Path, bootstrap: str | None, broker: LocalKafka | None) -> Stack:
    edge_port, sim_port, worker_port = free_ports(3)
    servers = bootstrap or (broker.bootstrap if broker else "")
    config = pipeline_config(scenario, servers, edge_port, sim_port, home, worker_port)
    config_path = home / "flood.toml"
    config_path.write_text(dumps(config))
    settings = load_settings(config_path, kafka={"bootstrap": servers})
    stack = Stack(home, settings, config_path, f"http://127.0.0.1:{sim_port}", broker)
    sim_config = home / "simulator.json"
    sim_config.write_text(json.dumps([asdict(d) for d in scenario.destinations]))
    return stack


async def start_processes(stack: Stack) -> None:
    """Topics, then simulator, edge and worker; returns once a probe webhook went all the way."""
    await ensure_topics(stack.kafka, catalogue(stack.settings))
    sim_port = stack.sim_url.rsplit(":", 1)[1]
    stack.spawn("simulator", "-m", "services.flood.simulator", str(stack.home / "simulator.json"), sim_port)
    stack.spawn("edge", "-m", "services.cli.main", "edge")
    stack.spawn("worker", "-m", "streams.worker")
    await asyncio.gather(
        _answers(stack, "simulator", f"{stack.sim_url}/_sim/health"),
        _probe(stack),
    )


class StackError(BreakwaterError):
    """A piece of the flood's stack did not come up; the message carries its log's tail."""


async def _answers(stack: Stack, name: str, url: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT
    async with httpx.AsyncClient(timeout=2.0) as client:
        while loop.time() < deadline:
            _check_alive(stack, name)
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)  # nothing announces a listening socket: poll, bounded
    raise StackError(f"{name} did not answer {url} within {READY_TIMEOUT:.0f}s:\n{stack.log_tail(name)}")


def _check_alive(stack: Stack, name: str) -> None:
    child = stack.children[name]
    if child.poll() is not None:
        raise StackError(f"{name} exited with {child.returncode}:\n{stack.log_tail(name)}")


async def _probe(stack: Stack) -> None:
    """The worker is ready once one signed webhook went edge → worker → events topic.

    Consumer-group state would say only that partitions are assigned; the probe shows the whole path
    works. Its key is remembered so the accounting can tell it from the flood's own webhooks.
    """
    host, port = stack.edge
    event_id = f"msg_probe_{uuid.uuid4().hex}"
    body, headers = sign("standard", event_id, "invoice.paid", int(time.time()))
    stack.probe_key = f"standard:{event_id}"
    await _answers(stack, "edge", f"http://{host}:{port}/readyz")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT
    async with httpx.AsyncClient(timeout=30.0) as client:
        while True:  # a 503 while a fresh broker warms up is retried, as a provider would
            url = f"http://{host}:{port}/webhooks/standard"
            response = await client.post(url, content=body, headers=headers)
            if response.status_code == 202:
                break
            if response.status_code != 503 or loop.time() > deadline:
                raise StackError(f"the edge answered the probe with {response.status_code}: {response.text}")
            await asyncio.sleep(1.0)  # the edge's Retry-After, shortened: nothing else to wait on
    topic = pipeline_topics(stack.settings).events
    consumer = clients.consumer(
        stack.settings.kafka,
        topic,
        client_id="breakwater-flood-probe",
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        while loop.time() < deadline:
            _check_alive(stack, "worker")
            batches = await consumer.getmany(timeout_ms=500)
            if any(r.key == stack.probe_key.encode() for rows in batches.values() for r in rows):
                return
    finally:
        await consumer.stop()
    raise StackError(f"the probe did not reach {topic} in {READY_TIMEOUT:.0f}s:\n{stack.log_tail('worker')}")
