"""Record size limits, declared once: what the edge stores, what every topic and producer accepts.

A body is stored base64 inside a JSON envelope (4/3 of its size, plus headers), and the records of the
later stages embed that envelope again: a retry or a dead letter with its error history, a quarantine
copy of a raw inbound value. So the edge refuses an envelope above :data:`ENVELOPE_MAX_BYTES` with 413
(it could never be stored, and a 503 would have the provider retry it for days), while every topic and
every producer allows :data:`RECORD_MAX_BYTES`: room for any record that embeds one envelope. A record
that still cannot fit is replaced by a bounded record that points at the original.
"""

from __future__ import annotations

ENVELOPE_MAX_BYTES = 2 << 20
"""The largest serialized envelope the edge writes to ``webhooks.inbound`` (2 MiB)."""

RECORD_MAX_BYTES = 4 << 20
"""``max.message.bytes`` of every Breakwater topic and ``max_request_size`` of every producer (4 MiB)."""

assert RECORD_MAX_BYTES >= 2 * ENVELOPE_MAX_BYTES, "a record must hold an embedded envelope and more"
