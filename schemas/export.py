"""JSON Schema files for every record type on Breakwater's topics, generated from the models.

The files under ``schemas/jsonschema/`` are committed so downstream consumers (in any language) can
read them without Python; ``test_committed_json_schemas_match_the_models`` in ``tests/unit/test_contracts.py``
fails when a model and its file drift.
Regenerate with ``breakwater schemas export`` (or ``make schemas``).
"""

from __future__ import annotations

import json
from pathlib import Path

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

# File stem -> model. Every record schema a topic names (schemas.topics.TopicSpec) belongs here.
RECORD_TYPES: dict[str, type[BaseModel]] = {
    ENVELOPE_SCHEMA: WebhookEnvelope,
    EVENT_RECORD_SCHEMA: EventRecord,
    DEAD_LETTER_SCHEMA: DeadLetter,
    QUARANTINE_SCHEMA: QuarantineRecord,
    RETRY_SCHEMA: RetryRecord,
}


def render(model: type[BaseModel]) -> str:
    """The schema text for ``model``, stable across runs (sorted keys, trailing newline)."""
    schema = model.model_json_schema(mode="serialization")
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
