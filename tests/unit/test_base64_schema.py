"""The committed envelope schema checks ``body`` the way the worker reads it, with a real validator.

``format: base64url`` is no JSON Schema format, so validators ignored it and passed any string; the
schema now carries a pattern. Each body here goes through the model (what the worker does) and
through ``jsonschema`` over the committed file (what another team does); the two must agree.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import ValidationError

from schemas.envelope import WebhookEnvelope
from schemas.export import SCHEMA_DIR
from schemas.topics import ENVELOPE_SCHEMA

SCHEMA = json.loads((SCHEMA_DIR / f"{ENVELOPE_SCHEMA}.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=FormatChecker())
BINARY = bytes([0xFB, 0xFF, 0xFE, 0x00, 0x80])  # encodes with + and / (standard) or - and _ (URL-safe)
ENVELOPE: dict[str, Any] = {
    "provider": "stripe",
    "provider_kind": "stripe",
    "event_id": "evt_1",
    "event_type": "charge.succeeded",
    "received_at": "2026-11-30T12:00:00Z",
    "content_type": "application/octet-stream",
    "edge_instance": "gateway-a",
}

ACCEPTED = {
    "url-safe, padded (what Breakwater writes)": base64.urlsafe_b64encode(BINARY).decode(),
    "url-safe, unpadded": base64.urlsafe_b64encode(BINARY).decode().rstrip("="),
    "standard alphabet, padded": base64.b64encode(BINARY).decode(),
    "standard alphabet, unpadded": base64.b64encode(BINARY).decode().rstrip("="),
    "empty": "",
    "one byte, padded": "QQ==",
    "one byte, short padding": "QQ=",
    "two bytes": "QUI=",
}
REFUSED = {
    "both alphabets in one string": "-_/+",
    "whitespace": "QUJD QUJD",
    "line break (MIME style)": "QUJD\nQUJD",
    "too much padding": "QUJD=",
    "padding inside": "QQ==QQ==",
    "a lone symbol": "Q",
    "non-zero unused bits": "QR==",
    "not base64 at all": "!!!!",
}


def model_accepts(body: str) -> bool:
    try:
        WebhookEnvelope.model_validate_json(json.dumps({**ENVELOPE, "body": body}))
    except ValidationError:
        return False
    return True


def schema_accepts(body: str) -> bool:
    return VALIDATOR.is_valid({**ENVELOPE, "body": body})


@pytest.mark.parametrize("body", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_bodies_the_worker_accepts_pass_the_committed_schema(body: str) -> None:
    assert model_accepts(body)
    assert schema_accepts(body)


@pytest.mark.parametrize("body", REFUSED.values(), ids=REFUSED.keys())
def test_bodies_the_worker_refuses_fail_the_committed_schema(body: str) -> None:
    assert not model_accepts(body)
    assert not schema_accepts(body)


def test_what_the_edge_writes_is_url_safe_with_padding() -> None:
    written = json.loads(WebhookEnvelope.model_validate({**ENVELOPE, "body": BINARY}).model_dump_json())
    assert written["body"] == base64.urlsafe_b64encode(BINARY).decode()
    assert schema_accepts(written["body"])


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="AQRgwBJ0489+/-_=", max_size=12))
def test_the_schema_and_the_model_agree_on_any_string(body: str) -> None:
    assert schema_accepts(body) == model_accepts(body), body
