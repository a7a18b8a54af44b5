"""Pipeline throughput (dedup → dispatch to a Kafka destination, exactly once) next to a raw aiokafka
transactional consume→produce loop over the same records, and the worker's peak RSS draining a backlog.

    .venv/bin/python -m benchmarks.bench_pipeline [--events 1000000] [--duplicates 0.1]

A local broker is started for the run unless BREAKWATER_KAFKA__BOOTSTRAP (or its short form) names
one. The backlog is produced first; then the raw loop copies it inbound → output in transactions of
``--batch`` records; then one worker subprocess drains it through dedup and dispatch. Rates count from
the first committed progress to the last (group join and start-up are excluded, the same for both).
Prints figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import tempfile
import time
import uuid
from pathlib import Path

import uvloop
from aiokafka.admin import AIOKafkaAdminClient

from benchmarks.figures import record
from benchmarks.harness import WorkerProcess, create_topics, envelope, pipeline_config, produce, settings_of
from schemas.topics import DEDUP_ROLE, TopicSpec, dispatch_role
from services.config import PipelineSettings, bootstrap_from_env
from services.flood.shutdown import SigtermUnwinds
from services.kafka import clients
from services.kafka.admin import ensure_topics
from services.kafka.clients import KafkaTarget
from services.kafka.local import start_fresh_broker
from streams.eos import PRODUCER_MAX_BATCH_BYTES, PRODUCER_RETRY_BACKOFF_MS
from streams.topics import pipeline_topics


async def committed(admin: AIOKafkaAdminClient, group: str) -> int:
    offsets = await admin.list_consumer_group_offsets(group)
    return sum(meta.offset for meta in offsets.values() if meta.offset > 0)


async def raw_loop(kafka: KafkaTarget, source: str, target: str, total: int, batch: int) -> float:
    """Events/s of the plainest exactly-once copy: getmany → send all → send offsets → commit."""
    group = f"raw-{uuid.uuid4().hex[:8]}"
    consumer = clients.consumer(
        kafka,
        source,
        group_id=group,
        auto_offset_reset="earliest",
        max_poll_records=batch,
    )
    producer = clients.producer(  # the worker's producer settings, so only the work differs
        kafka,
        transactional_id=group,
        linger_ms=5,
        max_batch_size=PRODUCER_MAX_BATCH_BYTES,
        retry_backoff_ms=PRODUCER_RETRY_BACKOFF_MS,
    )
    await consumer.start()
    await producer.start()
    done, started = 0, 0.0
    try:
        while done < total:
            batches = await consumer.getmany(timeout_ms=500, max_records=batch)
            if not batches:
                continue
            started = started or time.perf_counter()
            async with producer.transaction():
                for records in batches.values():
                    for record in records:
                        headers = list(record.headers)
                        await producer.send(target, record.value, key=record.key, headers=headers)
                offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
                await producer.send_offsets_to_transaction(offsets, group)
            done += sum(len(records) for records in batches.values())
        return done / (time.perf_counter() - started)
    finally:
        await producer.stop()
        await consumer.stop()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def pipeline(config: dict[str, object], unique: int, total: int, workdir: Path) -> tuple[float, float]:
    """Events/s through one worker subprocess, and its peak RSS in MB."""
    settings = settings_of(config)
    topics = pipeline_topics(settings)
    worker = WorkerProcess(config, "bench", workdir / "worker.log")
    admin = clients.admin(settings.kafka)
    await admin.start()
    worker.start()
    assert worker.proc is not None
    started, rss = 0.0, 0.0
    try:
        while True:
            await asyncio.sleep(0.25)
            if not worker.alive():
                raise RuntimeError(f"the worker died; see {worker.log}")
            rss = peak_rss_mb(worker.proc.pid)
            inbound = await committed(admin, topics.group(DEDUP_ROLE))
            dispatched = sum(
                [await committed(admin, topics.group(dispatch_role(p))) for p in ("stripe", "github")]
            )
            if inbound and not started:
                started = time.perf_counter()
            # committed offsets include one transaction marker per committed batch: ">=" is on purpose
            if inbound >= total and dispatched >= unique:
                return unique / (time.perf_counter() - started), rss
    finally:
        worker.stop()
        await admin.close()


async def run(bootstrap: str, events: int, duplicates: float, batch: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    name = f"bench{uuid.uuid4().hex[:6]}"
    config = pipeline_config(bootstrap, name, workdir / "state", batch_max_records=batch)
    config["topics"] = {"partitions": 4}
    settings = settings_of(config)
    topics = await create_topics(settings)
    rng = random.Random(1)
    unique = int(events * (1 - duplicates))
    ids = [(rng.choice(["stripe", "github"]), f"evt_{i}") for i in range(unique)]
    ids += rng.choices(ids, k=events - unique)
    started = time.perf_counter()
    for start in range(0, events, 100_000):
        await produce(settings, (envelope(p, e) for p, e in ids[start : start + 100_000]))
    print(f"backlog: {events:,} signed envelopes ({unique:,} unique) in {time.perf_counter() - started:.1f}s")

    await ensure_topics(settings.kafka, [TopicSpec(topics.name("bench.raw"), 4, 1)])
    raw = await raw_loop(settings.kafka, topics.inbound, topics.name("bench.raw"), events, batch)
    print(f"raw aiokafka transactional copy : {raw:9,.0f} events/s")
    rate, rss = await pipeline(config, unique, events, workdir)
    inbound_rate = rate * events / unique
    print(
        f"pipeline dedup → dispatch (EOS) : {rate:9,.0f} unique events/s delivered "
        f"({inbound_rate:,.0f} inbound records/s)"
    )
    print(f"ratio pipeline / raw            : {inbound_rate / raw:9.0%} (inbound records/s over raw copy)")
    print(f"worker peak RSS draining backlog: {rss:9.0f} MB")
    record(
        "pipeline",
        events=events,
        unique_delivered_per_s=round(rate),
        inbound_per_s=round(inbound_rate),
        raw_per_s=round(raw),
        peak_rss_mb=round(rss),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--duplicates", type=float, default=0.1)
    parser.add_argument("--batch", type=int, default=PipelineSettings().batch_max_records)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # start-up retries are noise here
    bootstrap = bootstrap_from_env()
    broker = None if bootstrap else start_fresh_broker(Path(tempfile.mkdtemp(prefix="bench-kafka-")))
    try:
        servers = bootstrap or (broker.bootstrap if broker else "")
        # the same event loop as the worker's (uvloop), so only the work differs
        uvloop.run(run(servers, args.events, args.duplicates, args.batch))
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    with SigtermUnwinds():  # a ``kill`` still runs the finally blocks that stop the broker
        main()
