"""The committed envelope-signature vectors (schemas/test-vectors/) agree with ``schemas/signing.py``.

Implementers in other languages check their signer against that file; this keeps it honest both ways:
what the signer writes is what the file says, and what the file says the verifier accepts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest

from schemas.envelope import WebhookEnvelope
from schemas.headers import KEY_ID_HEADER, SIGNATURE_HEADER
from schemas.signing import EnvelopeSignatureError, EnvelopeSigner

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
VECTORS = SCHEMAS / "test-vectors" / "envelope-signatures.json"
CASES: list[dict[str, Any]] = json.loads(VECTORS.read_text(encoding="utf-8"))["cases"]


def signer_of(case: dict[str, Any]) -> EnvelopeSigner:
    keys = {key_id: text.encode() for key_id, text in case["keys"].items()}
    return EnvelopeSigner(keys=keys, active_key_id=case["active_key_id"])


def value_of(case: dict[str, Any]) -> bytes:
    value = base64.b64decode(case["value_base64"])
    assert value == case["value"].encode("utf-8"), "value and value_base64 must be the same bytes"
    assert hashlib.sha256(value).hexdigest() == case["value_sha256"]
    return value


def expected_headers(case: dict[str, Any]) -> list[tuple[str, bytes]]:
    return [(name, text.encode()) for name, text in case["headers"].items()]


def test_the_vectors_cover_rotation_non_ascii_and_empty_bodies() -> None:
    names = {case["name"] for case in CASES}
    assert {"rotation-new-key", "rotation-old-key", "non-ascii", "empty-body", "non-ascii-key"} <= names
    assert any(len(case["keys"]) > 1 for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_signing_the_value_gives_the_expected_headers(case: dict[str, Any]) -> None:
    assert case["key_bytes_hex"] == case["keys"][case["active_key_id"]].encode().hex()
    assert signer_of(case).sign(value_of(case)) == expected_headers(case)
    assert list(case["headers"]) == [KEY_ID_HEADER, SIGNATURE_HEADER]


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_each_signature_is_what_the_readme_describes(case: dict[str, Any]) -> None:
    """Lowercase hex HMAC-SHA256 of the value bytes, keyed with the key's UTF-8 bytes: from the text, not
    from the signer, so the vectors, the README and the code cannot drift together."""
    key = bytes.fromhex(case["key_bytes_hex"])
    expected = hmac.new(key, value_of(case), hashlib.sha256).hexdigest()
    assert case["headers"][SIGNATURE_HEADER] == expected and expected == expected.lower()
    assert case["headers"][KEY_ID_HEADER] == case["active_key_id"]


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_the_verifier_accepts_the_vector_and_refuses_a_flipped_byte(case: dict[str, Any]) -> None:
    value, headers = value_of(case), expected_headers(case)
    # the verifier knows every configured key: it must pick the one the header names
    assert signer_of(case).verify(value, headers) == case["active_key_id"]
    for index in (0, len(value) // 2, len(value) - 1):
        flipped = bytearray(value)
        flipped[index] ^= 0x01
        with pytest.raises(EnvelopeSignatureError, match="does not match"):
            signer_of(case).verify(bytes(flipped), headers)
    signature = case["headers"][SIGNATURE_HEADER]
    for wrong in (signature.upper(), signature[:-1] + ("0" if signature[-1] != "0" else "1")):
        tampered = [headers[0], (SIGNATURE_HEADER, wrong.encode())]
        with pytest.raises(EnvelopeSignatureError, match="does not match"):
            signer_of(case).verify(value, tampered)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_every_vector_is_a_valid_envelope_under_its_record_key(case: dict[str, Any]) -> None:
    envelope = WebhookEnvelope.model_validate_json(value_of(case))
    assert envelope.key == case["record_key"]
    assert envelope.model_dump_json().encode() == value_of(case), "the value is the model's own serialization"


def test_the_vectors_and_the_json_schemas_ship_as_package_data() -> None:
    pyproject = tomllib.loads((SCHEMAS.parent / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["schemas"]
    for folder in ("jsonschema", "test-vectors"):
        for path in (SCHEMAS / folder).iterdir():
            relative = path.relative_to(SCHEMAS).as_posix()
            assert any(fnmatch(relative, pattern) for pattern in globs), f"{relative} would not ship"
