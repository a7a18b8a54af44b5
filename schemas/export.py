"""JSON Schema files for every record type on Breakwater's topics, generated from the models.

The files under ``schemas/jsonschema/`` are committed so downstream consumers (in any language) can
read them without Python; ``test_committed_json_schemas_match_the_models`` in ``tests/unit/test_contracts.py``
fails when a model and its file drift.
Regenerate with ``breakwater schemas export`` (or ``make schemas``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.deadletter import DeadLetter, QuarantineRecord
from schemas.envelope import WebhookEnvelope
from schemas.events import EventRecord
from schemas.retry import RetryRecord
from schemas.topics import (
    DEAD_LETTER_SCHEMA,
    ENVELOPE_SCHEMA,
    EVENT_RECORD_SCHEMA,
    QUARANTINE_SCHEMA,
    RETRY_SCHEMA,
)

SCHEMA_DIR = Path(__file__).parent / "jsonschema"


def _base64_pattern(alphabet: str) -> str:
    """Base64 in one ``alphabet`` (the 64 symbols as a regex class body), padding optional.

    A last group of two or three symbols must leave its unused low bits zero (``QQ`` yes, ``QR`` no),
    as pydantic-core's decoder demands: the pattern accepts exactly the strings the models accept.
    """
    symbol = f"[{alphabet}]"
    return f"(?:{symbol}{{4}})*(?:{symbol}[AQgw](?:==?)?|{symbol}{{2}}[AEIMQUYcgkosw048]=?)?"


BASE64_PATTERN = f"^(?:{_base64_pattern('A-Za-z0-9_-')}|{_base64_pattern('A-Za-z0-9+/')})$"
"""Every base64 string a Breakwater model accepts for a ``bytes`` field (tests/unit/test_base64_schema.py)."""

BASE64_NOTE = (
    "Bytes as base64 (RFC 4648). Breakwater writes the URL-safe alphabet (- and _) with = padding; "
    "it reads either alphabet (not both in one string), padding optional, no whitespace or line breaks, "
    "unused bits of the last symbol zero."
)

# pydantic writes ``format: base64url`` for bytes; no JSON Schema validator knows that format, so it
# checked nothing. These keywords say the same and a validator checks the pattern.
_BASE64_KEYWORDS: dict[str, Any] = {
    "contentEncoding": "base64",  # RFC 4648 names both alphabets base64; the pattern says which forms
    "pattern": BASE64_PATTERN,
}

# File stem -> model. Every record schema a topic names (schemas.topics.TopicSpec) belongs here.
RECORD_TYPES: dict[str, type[BaseModel]] = {
    ENVELOPE_SCHEMA: WebhookEnvelope,
    EVENT_RECORD_SCHEMA: EventRecord,
    DEAD_LETTER_SCHEMA: DeadLetter,
    QUARANTINE_SCHEMA: QuarantineRecord,
    RETRY_SCHEMA: RetryRecord,
}


def _checkable_base64(node: Any) -> None:
    """Replace every ``format: base64url`` below ``node`` with keywords a validator checks."""
    if isinstance(node, dict):
        if node.get("format") == "base64url":
            del node["format"]
            node.update(_BASE64_KEYWORDS)
            described = node.get("description")
            node["description"] = f"{described}. {BASE64_NOTE}" if described else BASE64_NOTE
        for child in node.values():
            _checkable_base64(child)
    elif isinstance(node, list):
        for child in node:
            _checkable_base64(child)


def render(model: type[BaseModel]) -> str:
    """The schema text for ``model``, stable across runs (sorted keys, trailing newline)."""
    schema = model.model_json_schema(mode="serialization")
    _checkable_base64(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://breakwater.dev/schemas/{model.__name__}.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def export(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every record type's schema; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, model in RECORD_TYPES.items():
        path = directory / f"{stem}.json"
        path.write_text(render(model))
        written.append(path)
    return written


def drifted(directory: Path = SCHEMA_DIR) -> list[str]:
    """Stems whose committed file differs from what the model renders now."""
    stale = []
    for stem, model in RECORD_TYPES.items():
        path = directory / f"{stem}.json"
        if not path.is_file() or path.read_text() != render(model):
            stale.append(stem)
    return stale
