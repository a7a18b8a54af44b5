"""Every Kafka header Breakwater writes or reads (``bw-*``), named once so the stages agree.

A header one stage writes and another reads is a contract between them: the edge signs, dedup
verifies; a retry tier or a replay names a destination, dispatch obeys it. The records on the events
topics carry the event's identity (``bw-provider``, ``bw-event-type``, ``bw-event-id``,
``bw-envelope-id``) and the W3C ``traceparent``, so a downstream consumer can filter without parsing
the value and continue the webhook's trace. Their values are printable ASCII: other text (an event
type such as ``café``) is percent-encoded UTF-8, and a value over :data:`EVENT_HEADER_MAX_CHARS` is
left out (the value holds it whole).
"""

from __future__ import annotations

__all__ = [
    "DESTINATION_HEADER",
    "ENVELOPE_ID_HEADER",
    "EVENT_HEADER_MAX_CHARS",
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "FORWARDED_FROM_HEADER",
    "KEY_ID_HEADER",
    "PROVIDER_HEADER",
    "REPLAYED_AT_HEADER",
    "REPLAYED_BY_HEADER",
    "REPLAY_OF_HEADER",
    "SIGNATURE_HEADER",
    "TRACEPARENT_HEADER",
]

KEY_ID_HEADER = "bw-key-id"
"""The id of the edge key that signed an inbound envelope (:mod:`schemas.signing`)."""
SIGNATURE_HEADER = "bw-signature"
"""HMAC-SHA256 of the envelope value under that key, hex."""
FORWARDED_FROM_HEADER = "bw-dedup-forwarded-from"
"""Added by dedup to a record it forwards to the partition that owns its identity: where it came from."""
DESTINATION_HEADER = "bw-destination"
"""Names the one destination a record back from a retry tier (or a replay) goes to; dispatch reads it."""
REPLAY_OF_HEADER = "bw-replay-of"
"""On a replayed record: the id of the dead letter it replays."""
REPLAYED_BY_HEADER = "bw-replayed-by"
"""On a replayed record: the operator who replayed it."""
REPLAYED_AT_HEADER = "bw-replayed-at"
"""On a replayed record: when, ISO 8601."""

TRACEPARENT_HEADER = "traceparent"
"""W3C Trace Context: the edge request's span, on an inbound envelope and on its event records (a new
trace when a gateway wrote none), so a consumer's span joins the webhook's trace."""
PROVIDER_HEADER = "bw-provider"
"""On an event record: the configured provider name (the edge's URL path segment)."""
EVENT_TYPE_HEADER = "bw-event-type"
"""On an event record: the provider's event type (``payment_intent.succeeded``, ``issues``...)."""
EVENT_ID_HEADER = "bw-event-id"
"""On an event record: the provider's event id, the dedup key with the provider."""
ENVELOPE_ID_HEADER = "bw-envelope-id"
"""On an event record: the edge-assigned envelope id (UUIDv7), the record's ``id`` field."""
EVENT_HEADER_MAX_CHARS = 1024
"""An event header longer than this is left out: headers ride in the record's headroom, a value
does not (a provider could put a type of a megabyte in a body)."""
