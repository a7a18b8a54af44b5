"""Hostile records on every topic a worker reads, a worker killed with SIGKILL mid-run: exact accounting.

Every inbound record must be delivered, dropped as a duplicate, quarantined or dead-lettered, exactly
once; records written straight to ready and retry topics (which dispatch trusts) must be delivered,
dead-lettered with a reason, or quarantined with their coordinates; no worker may exit because of a
record. See tests/support/hostile.py for what each generated record must become.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from schemas.signing import EnvelopeSigner
from tests.hostile.conftest import pinned, real_broker
from tests.support.hostile import (
    PROVIDERS,
    Context,
    Plan,
    Spec,
    Supervisor,
    account,
    await_outputs,
    describe,
    expected_outputs,
    parse_outputs,
    record_plans,
    stage_copies,
    topic_max_bytes,
    write_specs,
)
from tests.support.pipeline import CommittedReader, create_topics, pipeline_config, settings_of

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.chaos,
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]

SIGNING = {"active_key_id": "k2", "keys": {"k2": "hostile-key-two", "k1": "hostile-key-one"}}
DRAIN_SECONDS = 45.0


def hostile_config(bootstrap: str, state: Path) -> dict[str, Any]:
    name = f"hz{uuid.uuid4().hex[:8]}"
    config = pipeline_config(bootstrap, name, state)
    config["signing"] = SIGNING
    return config


def context(config: dict[str, Any], max_bytes: int) -> Context:
    keys = {k: v.encode() for k, v in SIGNING["keys"].items()}  # type: ignore[attr-defined]
    return Context(
        prefix=config["pipeline"]["topic_prefix"],
        signer=EnvelopeSigner(keys=keys, active_key_id="k2"),
        rotated=EnvelopeSigner(keys=keys, active_key_id="k1"),
        max_bytes=max_bytes,
        run=config["pipeline"]["app_id"],
    )


async def run_specs(
    config: dict[str, Any], state: Path, waves: list[list[Spec]], kills: list[float]
) -> tuple[list[str], list[Spec]]:
    """Write ``waves`` while one worker runs, kill it at ``kills`` (fractions of the outputs), drain."""
    settings = settings_of(config)
    topics = await create_topics(settings)
    bootstrap = settings.kafka.servers
    max_bytes = await topic_max_bytes(bootstrap, topics.inbound)
    supervisor = Supervisor(config, state / "worker.log")
    written: list[Spec] = []
    problems: list[str] = []
    async with (
        CommittedReader(bootstrap, topics.name("webhooks.events")) as events,
        CommittedReader(bootstrap, topics.dlq) as dlq,
        CommittedReader(bootstrap, topics.quarantine) as quarantine,
    ):
        readers = (events, dlq, quarantine)
        supervisor.start()
        try:
            pending = list(kills)
            for index, wave in enumerate(waves):
                await write_specs(bootstrap, wave, max_bytes)
                written += wave
                last = index == len(waves) - 1
                while pending and (last or len(pending) > len(waves) - 1 - index):
                    want = int(pending.pop(0) * expected_outputs(written))
                    await await_outputs(readers, want, timeout=30)
                    supervisor.kill()
            want = expected_outputs(written)
            if not await await_outputs(readers, want, timeout=DRAIN_SECONDS):
                have = sum(len(r.records) for r in readers)
                problems.append(f"drain: {have} of {want} outputs after {DRAIN_SECONDS:g}s")
            for reader in readers:
                await reader.settle(1.0)  # late extras (doubles) show up here
        finally:
            await supervisor.stop()
    stages = [CommittedReader(bootstrap, name) for name in (topics.inbound, *map(topics.ready, PROVIDERS))]
    for reader in stages:
        async with reader:
            await reader.settle(0.5)
    copies = stage_copies(stages[0], stages[1:])
    problems += account(written, parse_outputs(events, dlq, quarantine), copies)
    problems += [f"worker exit not caused by the test: {u}" for u in supervisor.unexpected]
    return problems, written


def report(title: str, problems: list[str], written: list[Spec]) -> str:
    refused = [f"{s.label} ({s.refused})" for s in written if s.refused]
    lines = [title, f"{len(problems)} problem(s):", *problems[:40]]
    if len(problems) > 40:
        lines.append(f"... and {len(problems) - 40} more")
    lines.append(f"refused by the broker at write (no input): {refused}")
    return "\n".join(lines)


@pinned
@real_broker
@given(plan=record_plans())
def test_every_hostile_record_is_accounted_for_exactly_once(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, plan: Plan
) -> None:
    state = tmp_path_factory.mktemp("hostile")
    config = hostile_config(kafka_bootstrap, state / "state")

    async def main() -> tuple[list[str], list[Spec]]:
        settings = settings_of(config)
        topics = await create_topics(settings)
        from tests.support.hostile import materialize

        specs = materialize(plan, context(config, await topic_max_bytes(kafka_bootstrap, topics.inbound)))
        size = -(-len(specs) // plan.waves)
        waves = [specs[i : i + size] for i in range(0, len(specs), size)]
        return await run_specs(config, state, waves, plan.kills)

    problems, written = asyncio.run(main())
    print(describe(plan), f"{len(written)} written, {len(problems)} problems")
    assert not problems, report(describe(plan), problems, written)
