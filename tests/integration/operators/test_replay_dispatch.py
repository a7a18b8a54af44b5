"""End to end: a replay is picked up by a real worker's dispatch loop like any ready record.

It goes to the destination that failed and no other; if that destination fails again, the new dead
letter has an id of its own and shows up as dead (the replayed one stays marked).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from services.operators.filters import DlqFilter
from tests.integration.operators.seed import seed
from tests.integration.streams.http_sink import Sink, serve_sink
from tests.support.pipeline import running_worker
from tests.support.waiting import until


async def test_replay_reaches_the_failed_destination_once(
    kafka_bootstrap: str, unique: Callable[[str], str], tmp_path: Path
) -> None:
    still_failing = "stripe:evt_stripe_5"
    sink = Sink(lambda key, seen: (500, {}) if key == still_failing else (200, {}))
    with serve_sink(sink):
        world = await seed(
            kafka_bootstrap,
            unique("e2e"),
            state_dir=str(tmp_path),
            max_attempts=3,
            destinations={"events": {"kind": "kafka"}, "sink": {"kind": "http", "url": sink.url}},
            routes=[{"destinations": ["events", "sink"]}],
        )
        ops = world.ops
        chosen = await ops.select(DlqFilter(provider="stripe", error_class="http_500"))
        originals = {e.id: e for e in chosen.entries}
        assert len(originals) == 6 and {e.dead.destination for e in chosen.entries} == {"sink"}
        report = await ops.replay(chosen, by="e2e")
        assert len(report.done) == 6

        async with running_worker(world.settings):
            await until(lambda: len(sink.delivered()) == 5, timeout=45, what="five replays delivered")

            async def dead_again() -> bool:
                return len((await ops.index()).entries) == 15

            await until(dead_again, timeout=30, what="the still failing replay dead-lettered again")

        assert sink.delivered() == {
            e.dead.envelope.key: 1 for e in chosen.entries if e.dead.envelope.key != still_failing
        }
        # A replay is a fresh budget: max_attempts (3) more tries before it is dead again.
        assert sink.statuses(still_failing) == [500, 500, 500]
        events = await world.read(ops.topics.name("webhooks.events"))
        assert events.records == []  # "events" had succeeded the first time: not called again

        index = await ops.index()
        new = [e for e in index.entries.values() if e.id not in {d.id for d in world.dead}]
        assert len(new) == 1
        again = new[0]
        assert again.state == "dead" and again.dead.envelope.key == still_failing
        stages = [e.stage for e in again.dead.history]
        assert stages[stages.index("replay") :].count("dispatch") == 3
        assert [r.id for r in index.related(again)] == [
            next(i for i, e in originals.items() if e.dead.envelope.key == still_failing)
        ]
        assert {index.entries[i].state for i in originals} == {"replayed"}
