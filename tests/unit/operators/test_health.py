"""The health score: full when calm, half gone per signal at its critical level, never out of 0..100."""

from __future__ import annotations

from schemas.topics import PipelineTopics
from services.operators.stats import HealthThresholds, health_score

T = HealthThresholds(lag_warn=100, lag_critical=1100, dead_warn=10, dead_critical=110)


def test_score_falls_linearly_between_warn_and_critical() -> None:
    assert health_score(0, 0, T) == 100
    assert health_score(100, 10, T) == 100
    assert health_score(600, 0, T) == 75
    assert health_score(1100, 0, T) == 50
    assert health_score(10**9, 60, T) == 25
    assert health_score(10**9, 10**9, T) == 0


def test_queues_are_the_worker_groups_and_their_topics() -> None:
    topics = PipelineTopics(prefix="p.", app_id="app", providers=("github", "stripe"), retry_tiers=("t1",))
    assert [(q.group, q.topic) for q in topics.queues()] == [
        ("app-dedup", "p.webhooks.inbound"),
        ("app-dispatch-github", "p.webhooks.ready.github"),
        ("app-dispatch-stripe", "p.webhooks.ready.stripe"),
        ("app-retry-t1", "p.webhooks.retry.t1"),
    ]
    assert (topics.dlq, topics.dlq_state) == ("p.webhooks.dlq", "p.webhooks.dlq.state")
