"""Properties that hold for every body: what our signer signs verifies; any one-byte change fails."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.config import ProviderSettings
from services.edge.verifiers.signers import (
    generate_sendgrid_key,
    sign_github,
    sign_sendgrid,
    sign_shopify,
    sign_standard,
    sign_stripe,
)
from services.errors import BadSignature, MalformedRequest
from tests.unit.verifiers.verifier_support import NOW, provider, verify_sync

SG_KEY, SG_PUBLIC = generate_sendgrid_key()
STANDARD_SECRET = "whsec_cHJvcGVydHktdGVzdC1zZWNyZXQ="

Signer = Callable[[bytes], dict[str, str]]
CASES: dict[str, tuple[ProviderSettings, Signer]] = {
    "stripe": (provider("stripe", "whsec_prop"), lambda b: sign_stripe(b, "whsec_prop", NOW)),
    "github": (provider("github", "gh"), lambda b: sign_github(b, "gh", delivery="d-1")),
    "shopify": (provider("shopify", "sh"), lambda b: sign_shopify(b, "sh", webhook_id="w-1")),
    "standard": (
        provider("standard", STANDARD_SECRET),
        lambda b: sign_standard(b, STANDARD_SECRET, timestamp=NOW, msg_id="m-1"),
    ),
    "sendgrid": (provider("sendgrid", SG_PUBLIC), lambda b: sign_sendgrid(b, SG_KEY, NOW)),
}

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def event_body(kind: str, extra: dict[str, object], event_id: str, event_type: str) -> bytes:
    event = {**extra, "id": event_id, "type": event_type}
    if kind == "sendgrid":
        event = {**extra, "sg_event_id": event_id, "event": event_type}
        return json.dumps([event], ensure_ascii=False).encode()
    return json.dumps(event, ensure_ascii=False).encode()


@pytest.mark.parametrize("kind", CASES)
@settings(max_examples=40, deadline=None)
@given(
    extra=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    event_id=st.text(min_size=1, max_size=30),
    event_type=st.text(min_size=1, max_size=30),
)
def test_any_signed_event_verifies(
    kind: str, extra: dict[str, object], event_id: str, event_type: str
) -> None:
    settings_, sign = CASES[kind]
    body = event_body(kind, extra, event_id, event_type)
    events = verify_sync(kind, settings_, body, sign(body))
    assert len(events) == 1
    if kind == "sendgrid":
        assert json.loads(events[0].body) == json.loads(body)[0]
    else:
        assert events[0].body == body
    if kind in ("stripe", "sendgrid"):
        assert (events[0].event_id, events[0].event_type) == (event_id, event_type)


@pytest.mark.parametrize("kind", CASES)
@settings(max_examples=40, deadline=None)
@given(body=st.binary(min_size=1, max_size=200), data=st.data())
def test_any_single_byte_change_fails(kind: str, body: bytes, data: st.DataObject) -> None:
    settings_, sign = CASES[kind]
    headers = sign(body)
    with contextlib.suppress(MalformedRequest):  # the untouched body passes; it may not be JSON
        verify_sync(kind, settings_, body, headers)
    index = data.draw(st.integers(0, len(body) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    tampered = bytearray(body)
    tampered[index] ^= flip
    with pytest.raises(BadSignature):
        verify_sync(kind, settings_, bytes(tampered), headers)
