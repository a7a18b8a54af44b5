"""The flood's script without anything running: phases, pacing, the traffic mix and the routes."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from pathlib import Path

import pytest

from services.config import load_settings
from services.flood.scenario import Phase, Scenario, default_scenario
from services.flood.tomlgen import dumps
from services.flood.traffic import Traffic, sign


def test_default_is_normal_then_a_hundredfold_flood_capped_in_count() -> None:
    scenario = default_scenario()
    normal, flood = scenario.phases
    assert (normal.name, normal.rate, normal.seconds, normal.planned) == ("normal", 50, 10, 500)
    assert (flood.name, flood.rate, flood.seconds) == ("flood", 5000, 20)
    assert flood.planned == 30_000  # the cap, not 5,000 x 20
    assert scenario.planned == 30_500 and scenario.send_seconds == 30


def test_scale_duration_and_rate_shape_the_phases() -> None:
    small = default_scenario(scale=0.1, duration=9, rate=20)
    normal, flood = small.phases
    assert normal.rate == pytest.approx(2) and flood.rate == pytest.approx(200)
    assert normal.seconds == pytest.approx(3) and flood.seconds == pytest.approx(6)
    assert flood.planned == min(3000, 1200)
    with pytest.raises(ValueError):
        default_scenario(scale=0)


def test_sends_are_evenly_spaced_and_bounded_by_duration() -> None:
    phase = Phase("p", rate=100, seconds=2, max_count=10_000)
    assert phase.planned == 200
    assert [phase.send_offset(i) for i in (0, 1, 100)] == [0.0, 0.01, 1.0]
    assert phase.send_offset(phase.planned - 1) < phase.seconds


def test_scenario_round_trips_through_json() -> None:
    scenario = default_scenario(scale=0.5)
    assert Scenario.from_json(scenario.as_json()) == scenario


def test_only_a_share_of_event_types_goes_to_the_http_destinations() -> None:
    scenario = default_scenario()
    assert scenario.routed("stripe", "payment_intent.succeeded") == ["events"]
    assert scenario.routed("stripe", "invoice.payment_failed") == ["events", "flaky"]
    assert scenario.routed("github", "release.published") == ["events", "slow"]
    assert scenario.routed("shopify", "refunds/create") == ["events", "limited"]
    assert scenario.routed("standard", "invoice.paid") == ["events"]  # a pattern is per provider


def test_traffic_mixes_new_duplicate_and_stale_resends() -> None:
    scenario = default_scenario()
    traffic = Traffic(scenario, seed=1)
    hooks = [traffic.next(now=1_800_000_000) for _ in range(5000)]
    kinds = Counter(h.kind for h in hooks)
    assert kinds["duplicate"] + kinds["stale"] == pytest.approx(1000, rel=0.15)  # 20%
    assert kinds["stale"] == pytest.approx(0.25 * (kinds["duplicate"] + kinds["stale"]), rel=0.25)
    assert {h.provider for h in hooks if h.kind == "stale"} <= {"stripe", "standard"}
    new_keys = [h.key for h in hooks if h.kind == "new"]
    assert len(set(new_keys)) == len(new_keys)
    assert {h.key for h in hooks if h.kind != "new"} <= set(new_keys)
    assert {h.provider for h in hooks} == {"stripe", "github", "shopify", "standard"}


def test_stale_stripe_resends_carry_an_hours_old_signed_timestamp() -> None:
    traffic = Traffic(default_scenario(), seed=2)
    now = 1_800_000_000
    stale = next(
        h for _ in range(20_000) if (h := traffic.next(now=now)).kind == "stale" and h.provider == "stripe"
    )
    stamp, digest = (part.split("=", 1)[1] for part in stale.headers["Stripe-Signature"].split(","))
    assert now - int(stamp) >= 3 * 3600
    expected = hmac.new(b"whsec_flood_stripe_secret", f"{stamp}.".encode() + stale.body, hashlib.sha256)
    assert digest == expected.hexdigest()  # correctly signed: refused only for its age


def test_github_event_type_is_what_the_edge_records() -> None:
    body, headers = sign("github", "d-1", "release", 1_800_000_000)
    assert headers["X-GitHub-Event"] == "release" and b'"action":"published"' in body


def test_generated_toml_is_read_back_by_the_settings_model(tmp_path: Path) -> None:
    import tomllib

    from services.flood.stack import pipeline_config

    config = pipeline_config(default_scenario(), "127.0.0.1:9", 8001, 8002, tmp_path, 8003)
    assert tomllib.loads(dumps(config)) == config
    (tmp_path / "flood.toml").write_text(dumps(config))
    settings = load_settings(tmp_path / "flood.toml")
    assert settings.pipeline.topic_prefix.startswith("flood-") and settings.edge.port == 8001
    assert settings.pipeline.probe_port == 8003  # the monitor reads the worker's /metrics there
    assert settings.pipeline.destinations["limited"].url == "http://127.0.0.1:8002/limited"  # type: ignore[union-attr]
    assert [t.name for t in settings.pipeline.retry_tiers] == ["1s", "5s", "20s", "60s"]
