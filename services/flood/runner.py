"""One flood from start to end: bring the stack up, send, drain, stop, read, account, report.

The load generator runs in its own process so the sampling here (lag, RSS) cannot slow it down or
bend its latencies; it reports progress as JSON lines, which drive the progress bar.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.flood.accounting import Observed, account
from services.flood.collect import Collected, collect
from services.flood.drain import OutputTail, drain
from services.flood.monitor import Monitor
from services.flood.plot import draw
from services.flood.report import end_to_end, latency_ms, timeline
from services.flood.scenario import Scenario
from services.flood.shutdown import SigtermUnwinds
from services.flood.stack import Stack, build_stack, start_processes
from streams.topics import pipeline_topics


@dataclass(frozen=True)
class FloodOptions:
    scenario: Scenario
    report_path: Path = Path("flood-report.json")
    bootstrap: str | None = None
    keep_temp: bool = False
    show_progress: bool = True


def run_flood(options: FloodOptions, console: Console | None = None) -> dict[str, Any]:
    """Run the whole flood and return the report (also written to ``options.report_path``).

    The broker starts before any event loop runs: started from a thread beside a running loop, the
    local broker's JVM was seen to die at once.
    """
    console = console or Console(stderr=True)
    home = Path(tempfile.mkdtemp(prefix="breakwater-flood-"))
    began = time.time()
    stack: Stack | None = None
    with SigtermUnwinds() as sigterm:  # ``kill`` must not leave the broker, edge or worker running
        try:
            console.print(
                f"[bold]flood[/bold]: starting {'broker, ' if not options.bootstrap else ''}"
                f"topics, edge, worker and simulator in {home}"
            )
            stack = build_stack(options.scenario, home, options.bootstrap)
            report = asyncio.run(_start_and_flood(stack, options, console))
            report["seconds"]["total"] = round(time.time() - began, 1)
        finally:
            sigterm.hold()  # a second SIGTERM (a parent passing one on) must not cut the cleanup short
            if stack is not None:
                stack.close()
            if not options.keep_temp:
                shutil.rmtree(home, ignore_errors=True)
    options.report_path.parent.mkdir(parents=True, exist_ok=True)
    options.report_path.write_text(json.dumps(report, indent=2))
    return report


async def _start_and_flood(stack: Stack, options: FloodOptions, console: Console) -> dict[str, Any]:
    began = time.time()
    await start_processes(stack)
    ready = time.time()
    report = await _flood(stack, options, console)
    report["seconds"]["startup"] = round(ready - began, 1)
    return report


async def _flood(stack: Stack, options: FloodOptions, console: Console) -> dict[str, Any]:
    scenario = options.scenario
    topics = pipeline_topics(stack.settings)
    extra: dict[str, int] = {}

    def pids() -> dict[str, int]:
        return {**stack.pids(), **extra}

    monitor = Monitor(stack.kafka, topics.queues(), pids, worker_metrics_url=stack.worker_metrics_url)
    stop_monitor = asyncio.Event()
    sampler = asyncio.create_task(monitor.run(stop_monitor))
    try:
        with _progress(options.show_progress, console) as progress:
            started = time.time()
            load = await _send(stack, scenario, progress, monitor, extra)
            sent_done = time.time()
            await _drain(stack, scenario, load["accepted"], progress)
            drained = time.time()
        await asyncio.to_thread(stack.stop_child, "worker")  # a still picture: nothing moves while read
        monitor.samples.append(await monitor.sample())
    finally:
        stop_monitor.set()
        await sampler
        await monitor.close()
    seen = await collect(stack.kafka, topics, stack.sim_url, scenario.routed)
    if stack.probe_key:  # the readiness probe is the flood's own, not a provider's webhook
        seen.forget(stack.probe_key)
    report = build_report(scenario, load, seen, monitor, started, stack.settings.pipeline.dedup_memory_mb)
    report["seconds"].update(send=round(sent_done - started, 1), drain=round(drained - sent_done, 1))
    report["plot"] = _plot(report, options.report_path)
    return report


def _progress(show: bool, console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        disable=not show,
        transient=False,
    )


async def _send(
    stack: Stack, scenario: Scenario, progress: Progress, monitor: Monitor, extra: dict[str, int]
) -> dict[str, Any]:
    """Run the load generator to completion; the simulator's slow destination slows at the flood."""
    spec, out = stack.home / "scenario.json", stack.home / "load.json"
    spec.write_text(json.dumps(scenario.as_json()))
    host, port = stack.edge
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.flood.loadgen",
        str(spec),
        host,
        str(port),
        str(out),
        stdout=asyncio.subprocess.PIPE,
    )
    extra["loadgen"] = child.pid
    task = progress.add_task("sending", total=scenario.planned, status="")
    flooding = False
    assert child.stdout is not None
    try:
        async for line in child.stdout:
            update = json.loads(line)
            if update["phase"] == "flood" and not flooding:
                flooding = True
                async with httpx.AsyncClient() as client:
                    await client.post(f"{stack.sim_url}/_sim/phase/flood")
            status = (
                f"{update['phase']} · accepted {update['accepted']:,} · dropped {update['dropped']}"
                f" · lag {monitor.last_lag if monitor.last_lag is not None else '…'}"
            )
            progress.update(task, completed=update["sent"], status=status)
        if await child.wait() != 0:
            raise RuntimeError(f"the load generator exited with {child.returncode}")
    finally:
        extra.pop("loadgen", None)
        if child.returncode is None:  # interrupted: the generator must not outlive the flood
            child.kill()
            await child.wait()
    result: dict[str, Any] = json.loads(out.read_text())
    if stack.probe_key:  # the readiness probe was sent too, by the flood itself
        result["sent_keys"].append(stack.probe_key)
    return result


async def _drain(stack: Stack, scenario: Scenario, accepted: dict[str, str], progress: Progress) -> int:
    """Wait until every accepted webhook reached an end at each destination, or the drain timeout."""
    task = progress.add_task("draining", total=round(scenario.drain_seconds), status="")

    def show(elapsed: float, left: int) -> None:
        progress.update(task, completed=round(elapsed), status=f"{left:,} deliveries to go")

    topics = pipeline_topics(stack.settings)
    async with OutputTail(stack.kafka, topics.events, topics.dlq, stack.sim_url) as tail:
        return await drain(tail, accepted, scenario.routed, scenario.drain_seconds, show)


def build_report(
    scenario: Scenario,
    load: dict[str, Any],
    seen: Collected,
    monitor: Monitor,
    started: float,
    dedup_budget_mb: int,
) -> dict[str, Any]:
    """Every figure of the flood as plain JSON."""
    accounting = account(
        Observed(
            accepted=load["accepted"],
            sent=frozenset(load["sent_keys"]),
            delivered=seen.delivered,
            dead={k: frozenset(v) for k, v in seen.dead.items()},
            quarantined=frozenset(seen.quarantined),
            pending={k: frozenset(v) for k, v in seen.pending.items()},
        ),
        scenario.routed,
        statuses=load["statuses"],
        rejected=load["rejected"],
        by_kind=load["by_kind"],
        dropped=load["dropped"],
    )
    peak_rss = monitor.peak_rss()
    delivered_times = [at for rows in seen.delivered_at.values() for _, at in rows]
    return {
        "scenario": scenario.as_json(),
        "seconds": {},
        "requests": {
            "sent": load["sent"],
            "statuses": load["statuses"],
            "by_kind": load["by_kind"],
            "by_phase": load["phases"],
            "dropped": load["dropped"],
        },
        "accepted": {"responses": load["statuses"].get("202", 0), "unique": len(load["accepted"])},
        "rejected_by_reason": load["rejected"],
        "delivered": {dest: len(keys) for dest, keys in sorted(seen.delivered.items())},
        "deliveries": {dest: sum(keys.values()) for dest, keys in sorted(seen.delivered.items())},
        "duplicates_dropped": seen.duplicates_dropped,
        "dedup": {
            "inbound_consumed": seen.inbound_consumed,
            "passed": seen.passed_dedup,
            "dropped": seen.duplicates_dropped,
        },
        "retried_by_tier": dict(seen.retried),
        "retried_by_destination": dict(seen.retried_by_destination),
        "dead_lettered": {dest: len(keys) for dest, keys in sorted(seen.dead.items())},
        "quarantined": len(seen.quarantined),
        "simulator_statuses": seen.simulator_statuses,
        "edge_latency_ms": latency_ms(load["latencies"]),
        "end_to_end_latency_ms": end_to_end(seen.received_at, seen.delivered_at),
        "peak_consumer_lag": monitor.peak_lag(),
        "peak_rss_mb": {k: round(v / 2**20) for k, v in sorted(peak_rss.items())},
        "worker_dedup_memory_mb": {
            "peak": None if (peak := monitor.peak_dedup_memory()) is None else round(peak / 2**20, 1),
            "budget": dedup_budget_mb,
        },
        "accounting": accounting.as_json(),
        "timeline": timeline(
            started, load["accepted_at"], delivered_times, [(s.at, s.lag) for s in monitor.samples]
        ),
        "samples": monitor.as_json(),
    }


def _plot(report: dict[str, Any], report_path: Path) -> str | None:
    with contextlib.suppress(ValueError):  # a timeline too short to draw is not worth failing for
        marks, at = {}, 0.0
        for phase in report["scenario"]["phases"]:
            marks[f"{phase['name']} starts"] = at
            at += phase["seconds"]
        marks["drain starts"] = report["seconds"]["send"]
        return str(draw(report["timeline"], report_path.with_suffix(".png"), marks=marks))
    return None
