"""Generated requests against the real edge for every provider kind; every 202 ends downstream once.

Answers must be in the README's edge table (never 500, never 503 while Kafka is up), error bodies are
``{"error", "message"}`` and never show a secret or the signature sent, and a worker running beside
the edge delivers each accepted event to webhooks.events exactly once (read_committed, by key).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.hostile.conftest import pinned, real_broker
from tests.support.hostile_edge import (
    Keys,
    Req,
    Sent,
    account_events,
    build,
    covering_requests,
    hostile_settings,
    judge,
    new_event_id,
    requests,
    serving_edge,
    signature_values,
)
from tests.support.pipeline import CommittedReader, create_topics, running_worker
from tests.support.waiting import until

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]
FRESH_ID_HEADERS = {"github": "X-GitHub-Delivery", "shopify": "X-Shopify-Webhook-Id"}
DRAIN_SECONDS = 60.0


async def send_all(client: httpx.AsyncClient, batch: list[Req], keys: Keys) -> list[Sent]:
    sent: list[Sent] = []
    for req in batch:
        group = uuid.uuid4().hex[:8]
        event_id = new_event_id(req.kind)
        path, body, headers, expected = build(req, keys, event_id)
        attempts = [(event_id, headers)] * (1 + req.replays)
        if req.fresh_id_replay:
            fresh = new_event_id(req.kind)
            attempts.append((fresh, {**headers, FRESH_ID_HEADERS[req.kind]: fresh}))
        for attempt_id, attempt_headers in attempts:
            response = await client.post(path, content=body, headers=attempt_headers)
            item = Sent(
                req,
                group,
                attempt_id,
                response.status_code,
                response.content,
                expected,
                signature_values(attempt_headers),
            )
            if response.status_code == 202:
                answer = response.json()
                item.accepted = list(zip(answer["ids"], answer["event_ids"], strict=True))
            sent.append(item)
    return sent


async def run_requests(bootstrap: str, state: Path, batch: list[Req]) -> list[str]:
    keys = Keys()
    name = f"he{uuid.uuid4().hex[:8]}"
    settings = hostile_settings(bootstrap, name, state, keys)
    topics = await create_topics(settings)
    problems: list[str] = []
    async with (
        CommittedReader(bootstrap, topics.name("webhooks.events")) as events,
        CommittedReader(bootstrap, topics.dlq) as dlq,
        CommittedReader(bootstrap, topics.quarantine) as quarantine,
        running_worker(settings),
        serving_edge(settings, keys) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        sent = await send_all(client, batch, keys)
        logical = {(s.group, index) for s in sent for index in range(len(s.accepted))}

        async def delivered() -> bool:
            await events.poll()
            return len(events.records) >= len(logical)

        try:
            await until(delivered, timeout=DRAIN_SECONDS, what="every accepted event on webhooks.events")
        except AssertionError as exc:
            problems.append(str(exc))
        for reader in (events, dlq, quarantine):
            await reader.settle(1.0)
    secrets = keys.secrets()
    for s in sent:
        problems += judge(s, secrets)
    problems += account_events(sent, [(r.key, None) for r in events.records])
    for r in dlq.records:
        problems.append(f"an accepted webhook was dead-lettered: {(r.value or b'')[:300]!r}")
    for r in quarantine.records:
        problems.append(f"an edge-signed envelope was quarantined: {(r.value or b'')[:300]!r}")
    statuses: dict[int, int] = {}
    for s in sent:
        statuses[s.status] = statuses.get(s.status, 0) + 1
    print(f"{len(sent)} requests, answers {dict(sorted(statuses.items()))}, {len(events.records)} events")
    return problems


@pinned
@real_broker
@given(batch=covering_requests(), more=st.lists(requests(), max_size=30))
def test_every_answer_is_in_the_table_and_every_202_is_delivered_once(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, batch: list[Req], more: list[Req]
) -> None:
    state = tmp_path_factory.mktemp("hostile-edge") / "state"
    problems = asyncio.run(run_requests(kafka_bootstrap, state, batch + more))
    lines = problems[:50] + ([f"... and {len(problems) - 50} more"] if len(problems) > 50 else [])
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(lines)
