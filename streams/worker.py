"""The stream worker: dedup, one dispatch loop per provider and one retry loop per tier.

Run it with ``breakwater worker`` or ``python -m streams.worker --config deploy/local/breakwater.toml``
(``BREAKWATER_CONFIG`` and ``BREAKWATER_PIPELINE__WORKER_ID`` work too). Several workers with the same
``pipeline.app_id`` share the partitions; give each a distinct ``pipeline.worker_id``.
The worker is crash-only for infrastructure: a disk or RocksDB error in any loop stops the process
with a non-zero status, and a restart resumes from the last committed transaction. A poison record
never does (it is quarantined or dead-lettered, streams.poison), and Kafka being away is waited out:
transactions and restores are retried with backoff while ``/readyz`` says not ready.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from schemas.signing import EnvelopeSigner
from schemas.topics import DEDUP_ROLE, dispatch_role, retry_role
from services.config import BreakwaterSettings, load_settings
from services.kafka.admin import MissingTopicsError, ensure_topics
from services.kafka.logs import fold_unreachable
from services.runtime import fix_mmap_threshold, freeze_startup_objects
from services.telemetry import configure_logging
from streams.dedup import DedupHandler
from streams.destinations import Deliverer, OutboundDeliverer
from streams.dispatch import DispatchHandler
from streams.eos import Handler, LoopConfig, TransactionalLoop
from streams.metrics import Metrics
from streams.observability import attach, watch_store_memory, worker_probes
from streams.policy import RetryPolicy
from streams.retry import RetryHandler
from streams.topics import catalogue, pipeline_topics

log = logging.getLogger("breakwater.worker")
METRICS_INTERVAL = 10.0
# A retry tier's partitions spend most of their time paused until their head is due, each holding what
# was prefetched for it; with the default 1 MiB that grew with the retry backlog (the soak's rate-limited
# destination), 64 KiB bounds it while forwarding a due backlog still takes one fetch per ~25 records.
RETRY_FETCH_BYTES = 64 << 10


def state_dir(settings: BreakwaterSettings) -> Path:
    pipeline = settings.pipeline
    return pipeline.state_dir / f"{pipeline.app_id}-{pipeline.worker_id}"


def build_loops(
    settings: BreakwaterSettings, deliverer: Deliverer, metrics: Metrics
) -> list[TransactionalLoop]:
    """Every loop of one worker, wired from ``settings``."""
    pipeline = settings.pipeline
    topics = pipeline_topics(settings)
    bootstrap = settings.kafka  # every client gets the one connection config (services.kafka.clients)

    def loop(
        role: str, topic: str, handler: Handler, fetch_bytes: int = LoopConfig.max_partition_fetch_bytes
    ) -> TransactionalLoop:
        config = LoopConfig(
            name=role,
            bootstrap=bootstrap,
            group_id=topics.group(role),
            transactional_id=topics.transactional_id(role, pipeline.worker_id),
            topics=(topic,),
            max_records=pipeline.batch_max_records,
            transaction_timeout_ms=pipeline.transaction_timeout_ms,
            session_timeout_ms=pipeline.session_timeout_ms,
            client_id=f"{settings.kafka.client_id}-{pipeline.worker_id}",
            max_partition_fetch_bytes=fetch_bytes,
            quarantine_topic=topics.quarantine,
        )
        return TransactionalLoop(config, handler)

    dedup = DedupHandler(
        bootstrap=bootstrap,
        topics=topics,
        signer=EnvelopeSigner.of(settings.signing),
        providers={name: settings.dedup_mode(name) for name in settings.providers},
        window_seconds=pipeline.dedup_window_seconds,
        expiry_interval_seconds=pipeline.expiry_interval_seconds,
        state_dir=state_dir(settings),
        metrics=metrics,
        memory_bytes=pipeline.dedup_memory_mb << 20,
    )
    loops = [loop(DEDUP_ROLE, topics.inbound, dedup)]
    policy = RetryPolicy(
        tuple(pipeline.retry_tiers), pipeline.retry_jitter, pipeline.max_attempts, random.Random()
    )
    for provider in settings.provider_names:
        handler = DispatchHandler(
            provider=provider,
            pipeline=pipeline,
            topics=topics,
            deliverer=deliverer,
            policy=policy,
            metrics=metrics,
        )
        loops.append(loop(dispatch_role(provider), topics.ready(provider), handler))
    for tier in pipeline.retry_tiers:
        loops.append(
            loop(
                retry_role(tier.name),
                topics.retry(tier.name),
                RetryHandler(
                    tier=tier.name,
                    topics=topics,
                    metrics=metrics,
                    delay_seconds=tier.delay_seconds,
                    jitter=pipeline.retry_jitter,
                    providers=settings.provider_names,
                ),
                fetch_bytes=RETRY_FETCH_BYTES,
            )
        )
    return loops


def http_deliverer(settings: BreakwaterSettings) -> OutboundDeliverer:
    """One outbound client (breaker, pacing, pool) per HTTP destination, shared by every provider's loop."""
    lanes = len(settings.provider_names) or 1  # each provider's loop may fill a destination's concurrency
    return OutboundDeliverer(settings.pipeline.destinations, lanes=lanes)


async def serve(settings: BreakwaterSettings, stop: asyncio.Event, metrics: Metrics | None = None) -> Metrics:
    """Run every loop until ``stop`` is set; the first loop to fail stops the others and re-raises."""
    fold_unreachable()  # a broker outage: one line a minute with counts, not ~900 ERROR lines a second
    await ensure_topics(settings.kafka, catalogue(settings), raise_limits=False)  # operators' call
    metrics = Metrics() if metrics is None else metrics
    attach(settings, metrics)
    async with http_deliverer(settings) as deliverer:  # closes the clients' pools when the worker stops
        loops = build_loops(settings, deliverer, metrics)
        for each in loops:
            if isinstance(each.handler, DedupHandler):
                watch_store_memory(settings, each.handler.memory)
        async with worker_probes(settings, loops), asyncio.TaskGroup() as group:
            for each in loops:
                group.create_task(each.run(stop), name=each.config.name)
            group.create_task(_report(metrics, stop))
    log.info("worker stopped: %s", metrics.line())
    return metrics


async def _report(metrics: Metrics, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), METRICS_INTERVAL)
        log.info("metrics %s", metrics.line())


def run_worker(settings: BreakwaterSettings) -> None:
    """Block until SIGINT/SIGTERM, then finish the batch in flight and leave the group."""

    async def main() -> None:
        fix_mmap_threshold()  # before the dedup stores open: RocksDB's buffers are what it is for
        freeze_startup_objects()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(settings, stop)

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main())


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (it is, with uvicorn[standard]): aiokafka spends much of its time in the loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a platform without uvloop runs on asyncio's loop
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m streams.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="TOML config file (default: $BREAKWATER_CONFIG)")
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    configure_logging(settings.log_level, settings.telemetry.log_format)
    try:
        run_worker(settings)
    except MissingTopicsError as exc:  # as `breakwater worker`: one line naming them, exit 1
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
