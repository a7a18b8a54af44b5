"""JSON-ready views of index entries: the one shape both ``--json`` and the HTTP API return."""

from __future__ import annotations

import base64
import json
from typing import Any

from services.operators.dlq_index import DlqEntry

__all__ = ["decode_body", "entry_detail", "entry_summary"]


def decode_body(body: bytes, content_type: str) -> dict[str, Any]:
    """The body as JSON when it parses, as text when it is UTF-8, else base64 (never lossy)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {"encoding": "base64", "content": base64.b64encode(body).decode()}
    if "json" in content_type or text.lstrip()[:1] in ("{", "["):
        try:
            return {"encoding": "json", "content": json.loads(text)}
        except ValueError:
            pass
    return {"encoding": "text", "content": text}


def entry_summary(entry: DlqEntry) -> dict[str, Any]:
    dead = entry.dead
    envelope = dead.envelope
    return {
        "id": dead.id,
        "state": entry.state,
        "dead_at": dead.dead_at.isoformat(),
        "provider": envelope.provider,
        "event_type": envelope.event_type,
        "event_id": envelope.event_id,
        "destination": dead.destination,
        "reason": dead.reason,
        "error_class": dead.final_error.error_class,
        "message": dead.final_error.message,
        "attempt": envelope.attempt,
    }


def entry_detail(entry: DlqEntry, related: list[DlqEntry]) -> dict[str, Any]:
    """The whole record: envelope (body decoded), record headers, failure history, mark, lineage."""
    dead = entry.dead
    envelope = dead.envelope.model_dump(mode="json", exclude={"body", "errors"})
    return {
        **entry_summary(entry),
        "location": {
            "partition": entry.partition,
            "offset": entry.offset,
            "timestamp_ms": entry.timestamp_ms,
        },
        "key": entry.key.decode("utf-8", "replace") if entry.key is not None else None,
        "record_headers": {name: raw.decode("utf-8", "replace") for name, raw in entry.headers},
        "envelope": envelope,
        "body": decode_body(dead.envelope.body, dead.envelope.content_type),
        "final_error": dead.final_error.model_dump(mode="json"),
        "history": [error.model_dump(mode="json") for error in dead.history],
        "mark": entry.mark.model_dump(mode="json") if entry.mark else None,
        "related": [entry_summary(other) for other in related],
    }
