"""What operator commands return: typed models, and :func:`to_json`, the one JSON shape of each.

The HTTP API answers with ``to_json(result)`` and ``--json`` prints it, so both show the same data; the
CLI's tables read the models' attributes. Times in summaries are ISO 8601 as ``datetime.isoformat``
writes them; the nested schema records (envelope, errors, mark) keep their own JSON form.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    FieldSerializationInfo,
    JsonValue,
    PlainSerializer,
    TypeAdapter,
    field_serializer,
)

from schemas.envelope import DeliveryError, WebhookEnvelope
from services.operators.dlq_index import DlqEntry, EntryState
from services.operators.marks import DlqMark

__all__ = [
    "DecodedBody",
    "DlqDetail",
    "DlqListing",
    "DlqSummary",
    "IsoTime",
    "RecordLocation",
    "decode_body",
    "entry_detail",
    "entry_summary",
    "to_json",
]

IsoTime = Annotated[datetime, PlainSerializer(datetime.isoformat, return_type=str, when_used="json")]
"""A time written as ``datetime.isoformat`` does (``+00:00``, not pydantic's ``Z``)."""


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DecodedBody(_View):
    """A webhook body as a person can read it: JSON when it parses, text when UTF-8, else base64."""

    encoding: Literal["json", "text", "base64"]
    content: JsonValue


class DlqSummary(_View):
    """One dead letter in a listing."""

    id: str
    state: EntryState
    dead_at: IsoTime
    provider: str
    event_type: str
    event_id: str
    destination: str
    reason: str
    error_class: str
    message: str
    attempt: int


class RecordLocation(_View):
    partition: int
    offset: int
    timestamp_ms: int


class DlqDetail(DlqSummary):
    """One dead letter whole: its envelope (the body decoded apart), headers, history, mark, lineage."""

    location: RecordLocation
    key: str | None
    record_headers: dict[str, str]
    envelope: WebhookEnvelope
    """Written without ``body`` (see :attr:`body`) and ``errors`` (see :attr:`history`)."""
    body: DecodedBody
    final_error: DeliveryError
    history: list[DeliveryError]
    mark: DlqMark | None
    related: list[DlqSummary]

    @field_serializer("envelope")
    def _envelope(self, envelope: WebhookEnvelope, info: FieldSerializationInfo) -> dict[str, Any]:
        return envelope.model_dump(mode="json", exclude={"body", "errors"})


class DlqListing(_View):
    items: list[DlqSummary]
    count: int
    truncated: bool
    """True when a scan bound stopped the read: older dead letters are not in ``items``."""


def decode_body(body: bytes, content_type: str) -> DecodedBody:
    """The body as JSON when it parses, as text when it is UTF-8, else base64 (never lossy)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return DecodedBody(encoding="base64", content=base64.b64encode(body).decode())
    if "json" in content_type or text.lstrip()[:1] in ("{", "["):
        try:
            return DecodedBody(encoding="json", content=json.loads(text))
        except ValueError:
            pass
    return DecodedBody(encoding="text", content=text)


def _summary_fields(entry: DlqEntry) -> dict[str, Any]:
    dead = entry.dead
    envelope = dead.envelope
    return {
        "id": dead.id,
        "state": entry.state,
        "dead_at": dead.dead_at,
        "provider": envelope.provider,
        "event_type": envelope.event_type,
        "event_id": envelope.event_id,
        "destination": dead.destination,
        "reason": dead.reason,
        "error_class": dead.final_error.error_class,
        "message": dead.final_error.message,
        "attempt": envelope.attempt,
    }


def entry_summary(entry: DlqEntry) -> DlqSummary:
    return DlqSummary(**_summary_fields(entry))


def entry_detail(entry: DlqEntry, related: list[DlqEntry]) -> DlqDetail:
    """The whole record: envelope (body decoded), record headers, failure history, mark, lineage."""
    dead = entry.dead
    return DlqDetail(
        **_summary_fields(entry),
        location=RecordLocation(
            partition=entry.partition, offset=entry.offset, timestamp_ms=entry.timestamp_ms
        ),
        key=entry.key.decode("utf-8", "replace") if entry.key is not None else None,
        record_headers={name: raw.decode("utf-8", "replace") for name, raw in entry.headers},
        envelope=dead.envelope,
        body=decode_body(dead.envelope.body, dead.envelope.content_type),
        final_error=dead.final_error,
        history=list(dead.history),
        mark=entry.mark,
        related=[entry_summary(other) for other in related],
    )


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def to_json(result: object) -> Any:
    """The JSON-ready form of an operator result (a model, a pydantic dataclass, or plain counts)."""
    kind = type(result)
    adapter = _ADAPTERS.get(kind) or _ADAPTERS.setdefault(kind, TypeAdapter(kind))
    return adapter.dump_python(result, mode="json")
