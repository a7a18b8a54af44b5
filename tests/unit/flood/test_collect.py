"""What the flood's end-of-run reading counts as still in flight."""

from __future__ import annotations

from services.flood.collect import Collected
from tests.support.pipeline import envelope


def routed(provider: str, event_type: str) -> list[str]:
    return ["events", "hook"]


def test_an_unconsumed_envelope_is_pending_at_every_destination_its_routes_name() -> None:
    seen = Collected()
    seen.add_pending(envelope("stripe", "evt_1").model_dump_json().encode(), None, routed)
    assert seen.pending == {"events": {"stripe:evt_1"}, "hook": {"stripe:evt_1"}}


def test_a_retried_envelope_is_pending_only_at_the_destination_its_header_names() -> None:
    seen = Collected()
    seen.add_pending(envelope("github", "d-9").model_dump_json().encode(), b"hook", routed)
    assert seen.pending == {"hook": {"github:d-9"}}
