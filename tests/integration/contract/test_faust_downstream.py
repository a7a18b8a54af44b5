"""A real Faust app downstream of ``webhooks.events``, against the truth (a ``read_committed`` reader).

faust-streaming's consumer takes no isolation setting: its aiokafka driver reads ``read_uncommitted``
unless ``processing_guarantee="exactly_once"``, which switches it to ``read_committed``. The log holds
what a killed worker leaves behind, an aborted transaction's records, between the worker's committed
events. The default app counts the aborted records too; the README's recipe counts exactly the truth,
and after a plain restart it reads only what is new.
"""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from tests.support.pipeline import (
    CommittedReader,
    create_topics,
    envelope,
    produce,
    running_worker,
    settings_of,
)

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.skipif(importlib.util.find_spec("faust") is None, reason="faust-streaming is not installed"),
]
COUNTER = Path(__file__).with_name("faust_counter.py")
Offset = tuple[int, int]


class FaustApp:
    """``faust_counter.py`` in a subprocess: one app (consumer group) logging what it reads."""

    def __init__(self, bootstrap: str, topic: str, group: str, folder: Path, guarantee: str) -> None:
        self.out = folder / f"{group}.out"
        self.log = folder / f"{group}.log"
        datadir = folder / f"{group}-data"
        self.args = [
            sys.executable,
            str(COUNTER),
            bootstrap,
            topic,
            group,
            str(self.out),
            str(datadir),
            guarantee,
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        """A plain restart's first half: SIGTERM, Faust commits what it processed and leaves the group."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)

    def read(self) -> list[Offset]:
        """(partition, offset) of every record the app has read, in order, repeats kept."""
        if not self.out.exists():
            return []
        rows = [line.split(" ", 2) for line in self.out.read_text().splitlines()]
        return [(int(partition), int(offset)) for partition, offset, _ in rows]

    async def until(self, done: Callable[[list[Offset]], bool], timeout: float, what: str) -> None:
        """Wait for ``done(read)``, then until nothing new arrives for 2 s (late extra records)."""
        deadline = time.monotonic() + timeout
        while not done(self.read()):
            if time.monotonic() > deadline or (self.proc is not None and self.proc.poll() is not None):
                tail = self.log.read_text()[-2000:] if self.log.exists() else ""
                raise AssertionError(f"{what}: the app read {len(self.read())} records\n{tail}")
            await asyncio.sleep(0.2)
        last, since = len(self.read()), time.monotonic()
        while time.monotonic() - since < 2.0:
            await asyncio.sleep(0.2)
            if len(self.read()) != last:
                last, since = len(self.read()), time.monotonic()


async def aborted_batch(bootstrap: str, topic: str, keys: list[bytes]) -> None:
    """What a worker killed mid-batch leaves: its records in the log, then an abort marker."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-killed-worker")
    await producer.start()
    try:
        await producer.begin_transaction()
        for key in keys:
            await producer.send(topic, b'{"schema_version": 1}', key=key)
        await producer.flush()
        await producer.abort_transaction()
    finally:
        await producer.stop()


async def test_faust_counts_the_truth_only_with_the_recipe(config: dict[str, Any], tmp_path: Path) -> None:
    settings = settings_of(config)
    topics = await create_topics(settings)
    bootstrap, app_id = settings.kafka.servers, settings.pipeline.app_id
    default = FaustApp(bootstrap, topics.events, f"{app_id}-default", tmp_path, "at_least_once")
    recipe = FaustApp(bootstrap, topics.events, f"{app_id}-recipe", tmp_path, "exactly_once")
    async with CommittedReader(bootstrap, topics.events) as events, running_worker(settings):
        try:
            await produce(settings, [envelope("stripe", f"evt_{i}") for i in range(600)])
            await events.until(lambda r: len(r.records) >= 600, 60, "the first events")
            await aborted_batch(bootstrap, topics.events, [b"stripe:evt_%d" % i for i in range(150)])
            await produce(settings, [envelope("github", f"evt_g{i}") for i in range(400)])
            await events.until(lambda r: len(r.records) >= 1000, 60, "the events after the abort")
            truth = {(r.partition, r.offset) for r in events.records}

            default.start()
            recipe.start()
            await recipe.until(lambda read: len(read) >= len(truth), 45, "the recipe's first run")
            await default.until(lambda read: len(read) >= len(truth), 30, "the default app")
            assert len(default.read()) == len(truth) + 150, "the default app counts the aborted records"
            assert Counter(recipe.read()) == Counter(truth), "the recipe reads each committed event once"

            recipe.stop()  # a plain restart, with new events while it is away
            await produce(settings, [envelope("stripe", f"evt_r{i}") for i in range(200)])
            await events.until(lambda r: len(r.records) >= 1200, 60, "the events during the restart")
            truth = {(r.partition, r.offset) for r in events.records}
            recipe.start()
            await recipe.until(lambda read: len(read) >= len(truth), 45, "the recipe after its restart")
            assert Counter(recipe.read()) == Counter(truth), "after a restart only the new events"
        finally:
            default.stop()
            recipe.stop()
