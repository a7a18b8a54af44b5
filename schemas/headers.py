"""Every Kafka header Breakwater writes or reads (``bw-*``), named once so the stages agree.

A header one stage writes and another reads is a contract between them: the edge signs, dedup
verifies; a retry tier or a replay names a destination, dispatch obeys it. Standard headers that
are not ours (``traceparent``) are named where their standard is handled.
"""

from __future__ import annotations

__all__ = [
    "DESTINATION_HEADER",
    "FORWARDED_FROM_HEADER",
    "KEY_ID_HEADER",
    "REPLAYED_AT_HEADER",
    "REPLAYED_BY_HEADER",
    "REPLAY_OF_HEADER",
    "SIGNATURE_HEADER",
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
