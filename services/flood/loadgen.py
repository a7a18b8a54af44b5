"""The flood's load generator: its own process, raw keep-alive sockets, open-loop pacing.

httpx spends more CPU per request than the edge does, which would measure the client; this renders
each request by hand (as ``benchmarks/loadgen.py`` does) and records every answer and its latency.
Run by the flood as ``python -m services.flood.loadgen SCENARIO HOST PORT OUT``; it prints one JSON
progress line a quarter second and writes the full result to OUT when done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.flood.scenario import Phase, Scenario
from services.flood.traffic import Traffic, Webhook

ANSWER_TIMEOUT = 30.0
"""The edge answers 503 after ``produce_timeout_seconds``; silence past this counts as dropped."""


def render_post(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return status, body


def error_code(status: int, body: bytes) -> str:
    """The edge's ``error`` field, or the status when the body has none."""
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return str(status)


@dataclass
class LoadResult:
    """Everything the generator saw; accepted keys carry their event type for the accounting."""

    started_at: float = 0.0
    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    dropped: int = 0
    latencies: list[float] = field(default_factory=list)
    accepted: dict[str, str] = field(default_factory=dict)
    sent_keys: set[str] = field(default_factory=set)
    accepted_at: list[float] = field(default_factory=list)
    phases: dict[str, dict[str, float]] = field(default_factory=dict)

    def record(self, hook: Webhook, status: int, body: bytes, latency: float, at: float) -> None:
        code = str(status)
        self.statuses[code] += 1
        self.by_kind.setdefault(hook.kind, Counter())[code] += 1
        self.latencies.append(latency)
        if status == 202:
            self.accepted[hook.key] = hook.event_type
            self.accepted_at.append(at)
        else:
            self.rejected[f"{status} {error_code(status, body)}"] += 1

    def progress(self, phase: str) -> dict[str, Any]:
        return {
            "phase": phase,
            "sent": self.sent,
            "answered": sum(self.statuses.values()),
            "accepted": self.statuses.get("202", 0),
            "dropped": self.dropped,
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "sent": self.sent,
            "statuses": dict(self.statuses),
            "rejected": dict(self.rejected),
            "by_kind": {kind: dict(counts) for kind, counts in self.by_kind.items()},
            "dropped": self.dropped,
            "latencies": self.latencies,
            "accepted": self.accepted,
            "sent_keys": sorted(self.sent_keys),
            "accepted_at": self.accepted_at,
            "phases": self.phases,
        }


class Generator:
    """Sends the scenario's phases over ``connections`` keep-alive sockets to one edge."""

    def __init__(self, scenario: Scenario, host: str, port: int) -> None:
        self.scenario = scenario
        self.host, self.port = host, port
        self.traffic = Traffic(scenario)
        self.result = LoadResult()
        self.phase = "starting"

    async def run(self) -> LoadResult:
        loop = asyncio.get_running_loop()
        self.result.started_at = time.time()
        start = loop.time()
        for phase in self.scenario.phases:
            self.phase = phase.name
            tickets = iter(range(phase.planned))
            before, began = self.result.sent, loop.time()
            await asyncio.gather(
                *(self._connection(phase, start, tickets) for _ in range(self.scenario.connections))
            )
            sent, seconds = self.result.sent - before, max(1e-3, loop.time() - began)
            self.result.phases[phase.name] = {
                "planned": phase.planned,
                "sent": sent,
                "target_rate": phase.rate,
                "achieved_rate": round(sent / seconds, 1),
            }
            start += phase.seconds
        self.phase = "done"
        return self.result

    async def _connection(self, phase: Phase, start: float, tickets: Any) -> None:
        loop = asyncio.get_running_loop()
        end = start + phase.seconds
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            for index in tickets:
                due = start + phase.send_offset(index)
                if due >= end or loop.time() >= end:  # bounded in time even when behind schedule
                    return
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)  # pacing: the schedule, not a condition
                if streams is None:
                    streams = await asyncio.open_connection(self.host, self.port)
                if not await self._send(streams, self.traffic.next()):
                    streams[1].close()
                    streams = None
        finally:
            if streams is not None:
                streams[1].close()

    async def _send(self, streams: tuple[asyncio.StreamReader, asyncio.StreamWriter], hook: Webhook) -> bool:
        reader, writer = streams
        self.result.sent += 1
        self.result.sent_keys.add(hook.key)
        sent = time.perf_counter()
        try:
            writer.write(render_post(self.host, f"/webhooks/{hook.provider}", hook.body, hook.headers))
            status, body = await asyncio.wait_for(read_response(reader), ANSWER_TIMEOUT)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            self.result.dropped += 1
            return False
        self.result.record(hook, status, body, time.perf_counter() - sent, time.time())
        return True


async def _report(generator: Generator, done: asyncio.Event) -> None:
    while not done.is_set():
        sys.stdout.write(json.dumps(generator.result.progress(generator.phase)) + "\n")
        sys.stdout.flush()
        try:
            await asyncio.wait_for(done.wait(), 0.25)
        except TimeoutError:
            continue


async def main_async(scenario: Scenario, host: str, port: int, out: Path) -> None:
    generator = Generator(scenario, host, port)
    done = asyncio.Event()
    reporter = asyncio.create_task(_report(generator, done))
    result = await generator.run()
    done.set()
    await reporter
    await asyncio.to_thread(out.write_text, json.dumps(result.as_json()))
    sys.stdout.write(json.dumps({**result.progress("done"), "result": str(out)}) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m services.flood.loadgen", description=__doc__.splitlines()[0]
    )
    parser.add_argument("scenario", type=Path)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    scenario = Scenario.from_json(json.loads(args.scenario.read_text()))
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        asyncio.run(main_async(scenario, args.host, args.port, args.out))
    else:
        uvloop.run(main_async(scenario, args.host, args.port, args.out))


if __name__ == "__main__":
    main()
