"""Waiting for the pipeline to finish the flood's work: counted at the outputs, not from lag.

Lag says what waits at an input, not which webhooks reached an end, so "lag is 0" cannot say that
every accepted webhook was accounted for. Instead this tails the outputs (the events topic,
the DLQ and the simulator's log) and counts, for every accepted webhook and every destination it is
routed to, whether it reached an end (delivered or dead-lettered). The drain is over when none remain.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping

import httpx

from schemas.deadletter import DeadLetter
from services.kafka import clients
from services.kafka.clients import KafkaTarget


class OutputTail:
    """Reads the events topic and the DLQ from the beginning, keeping which keys ended where."""

    def __init__(self, bootstrap: KafkaTarget, events_topic: str, dlq_topic: str, sim_url: str) -> None:
        self._events, self._dlq = events_topic, dlq_topic
        self._sim_url = sim_url
        self._consumer = clients.consumer(
            bootstrap,
            events_topic,
            dlq_topic,
            client_id="breakwater-flood-drain",
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self.ended: set[tuple[str, str]] = set()
        """(destination, key) pairs that were delivered or dead-lettered."""

    async def __aenter__(self) -> OutputTail:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def poll(self) -> None:
        """Take in what the topics and the simulator hold now."""
        batches = await self._consumer.getmany(timeout_ms=200, max_records=50_000)
        for tp, records in batches.items():
            for record in records:
                if tp.topic == self._events:
                    self.ended.add(("events", json.loads(record.value)["key"]))
                else:
                    letter = DeadLetter.model_validate_json(record.value)
                    self.ended.add((letter.destination, letter.envelope.key))
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(timeout=10.0) as client:
                log = (await client.get(f"{self._sim_url}/_sim/log")).json()
            for dest, rows in log.items():
                self.ended.update((dest, row[0]) for row in rows if 200 <= row[1] < 300)


def remaining(
    accepted: Mapping[str, str], routed: Callable[[str, str], list[str]], ended: set[tuple[str, str]]
) -> int:
    """(destination, key) pairs of accepted webhooks that have not reached an end yet."""
    return sum(
        1
        for key, event_type in accepted.items()
        for dest in routed(key.split(":", 1)[0], event_type)
        if (dest, key) not in ended
    )


async def drain(
    tail: OutputTail,
    accepted: Mapping[str, str],
    routed: Callable[[str, str], list[str]],
    timeout: float,
    report: Callable[[float, int], None],
) -> int:
    """Poll the outputs until nothing remains or ``timeout``; returns what remains (still in flight)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    left = remaining(accepted, routed, tail.ended)
    while left and (elapsed := loop.time() - start) < timeout:
        report(elapsed, left)
        await tail.poll()
        left = remaining(accepted, routed, tail.ended)
        await asyncio.sleep(0.5)  # outputs announce nothing; the simulator log is polled
    report(timeout, left)
    return left
