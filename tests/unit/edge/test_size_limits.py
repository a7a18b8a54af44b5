"""The size limits of schemas.limits, applied everywhere they are declared (no broker needed)."""

from __future__ import annotations

import pytest

from schemas.limits import ENVELOPE_MAX_BYTES, RECORD_MAX_BYTES
from services.config import ConfigError, envelope_bytes_for_body
from services.edge.publisher import EnvelopeProducer
from streams.topics import catalogue
from tests.support.edge import edge_settings, envelope_signer


def test_every_topic_of_the_catalogue_allows_records_of_the_record_limit() -> None:
    settings = edge_settings(
        "127.0.0.1:1",
        pipeline={
            "destinations": {"events": {"kind": "kafka"}, "mirror": {"kind": "kafka", "topic": "x.mirror"}},
            "routes": [{"destinations": ["events", "mirror"]}],
        },
    )
    specs = catalogue(settings)
    assert any(spec.name == "x.mirror" for spec in specs)  # a route topic
    assert any("changelog" in spec.name for spec in specs)
    assert {spec.name: spec.configs.get("max.message.bytes") for spec in specs} == {
        spec.name: str(RECORD_MAX_BYTES) for spec in specs
    }


def test_the_producer_allows_requests_of_the_record_limit() -> None:
    producer = EnvelopeProducer("127.0.0.1:1", envelope_signer())
    assert producer._options["max_request_size"] == RECORD_MAX_BYTES


def test_the_default_body_limit_fits_an_envelope() -> None:
    settings = edge_settings("127.0.0.1:1")
    assert envelope_bytes_for_body(settings.edge.max_body_bytes) <= ENVELOPE_MAX_BYTES


@pytest.mark.parametrize("body_limit", [1_600_000, 2 << 20, 10 << 20])
def test_a_body_limit_whose_envelope_cannot_fit_fails_at_start_naming_the_field(body_limit: int) -> None:
    with pytest.raises(ConfigError) as caught:
        edge_settings("127.0.0.1:1", edge={"max_body_bytes": body_limit})
    message = str(caught.value)
    assert "edge.max_body_bytes" in message and str(ENVELOPE_MAX_BYTES) in message
    assert "at most 1523712" in message


def test_the_largest_allowed_body_limit_is_accepted() -> None:
    assert edge_settings("127.0.0.1:1", edge={"max_body_bytes": 1523712}).edge.max_body_bytes == 1523712
