"""The package's public surface: build_verifier, the Verifier protocol, shared checks, signers."""

from __future__ import annotations

import doctest
import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

import services.edge.verifiers as verifiers
from schemas.providers import KINDS
from services.config import ConfigError
from services.edge.verifiers import VerifiedEvent, Verifier, build_verifier, signers
from services.edge.verifiers._common import check_fresh, to_datetime
from services.edge.verifiers.signers import (
    generate_sendgrid_key,
    sample_body,
    sign_github,
    sign_shopify,
    sign_standard,
    sign_stripe,
)
from services.errors import BadSignature, StaleTimestamp
from tests.unit.verifiers.verifier_support import provider

SECRETS = {
    "stripe": "whsec_x",
    "github": "x",
    "shopify": "x",
    "standard": "whsec_eA==",
    "sendgrid": generate_sendgrid_key()[1],
    "paypal": "unused",
}


def test_exported_members() -> None:
    public = {name for name in vars(verifiers) if not name.startswith("_")}
    assert set(verifiers.__all__) <= public
    assert {"build_verifier", "Verifier", "VerifiedEvent"} <= set(verifiers.__all__)


@pytest.mark.parametrize("kind", KINDS)
async def test_every_kind_builds_a_verifier(kind: str) -> None:
    async with httpx.AsyncClient() as http:
        verifier = build_verifier(
            name=f"my-{kind}", kind=kind, settings=provider(kind, SECRETS[kind], webhook_id="W"), http=http
        )
    assert isinstance(verifier, Verifier)
    assert verifier.kind == kind
    assert "application/json" in verifier.content_types
    assert all(ct == ct.lower() and ";" not in ct for ct in verifier.content_types)
    assert verifier.envelope_headers
    assert all(h == h.lower() for h in verifier.envelope_headers)


def test_unknown_kind_and_missing_secrets_fail_at_start() -> None:
    with pytest.raises(ConfigError, match=r"providers\.x\.kind"):
        build_verifier(name="x", kind="mailgun", settings=provider("stripe", "s"))
    with pytest.raises(ConfigError, match=r"providers\.x\.secrets"):
        build_verifier(name="x", kind="stripe", settings=provider("stripe"))


def test_verified_event_is_frozen() -> None:
    event = VerifiedEvent(event_id="e", event_type="t", occurred_at=None, body=b"{}")
    with pytest.raises(AttributeError):
        event.event_id = "other"  # type: ignore[misc]
    assert event.batch_index is None


def test_stale_messages() -> None:
    with pytest.raises(StaleTimestamp, match=r"^timestamp 1700000000 is 612 s old, tolerance 300 s$"):
        check_fresh(1_700_000_000, 1_700_000_612, 300)
    with pytest.raises(
        StaleTimestamp, match=r"^timestamp 1700000612 is 612 s in the future, tolerance 300 s$"
    ):
        check_fresh(1_700_000_612, 1_700_000_000, 300)
    check_fresh(1_700_000_000, 1_700_000_300, 300)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_700_000_000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("2023-11-14T22:13:20Z", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("2023-11-14T17:13:20-05:00", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("2023-11-14T22:13:20", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        (None, None),
        (True, None),
        ("soon", None),
        (10**20, None),
        ({"a": 1}, None),
    ],
)
def test_to_datetime(value: object, expected: datetime | None) -> None:
    assert to_datetime(value) == expected


def test_signers_doctest() -> None:
    result = doctest.testmod(signers)
    assert result.attempted and not result.failed


@pytest.mark.parametrize("kind", KINDS)
def test_sample_bodies_are_json(kind: str) -> None:
    assert isinstance(json.loads(sample_body(kind, count=2)), dict | list)


@pytest.mark.parametrize(("kind", "field"), [("stripe", "id"), ("paypal", "id")])
def test_sample_event_ids_are_fresh_unless_given(kind: str, field: str) -> None:
    assert json.loads(sample_body(kind))[field] != json.loads(sample_body(kind))[field]
    assert json.loads(sample_body(kind, event_id="same"))[field] == "same"


def test_sendgrid_sample_batch() -> None:
    batch = json.loads(sample_body("sendgrid", event_id="sg", count=3))
    assert [e["sg_event_id"] for e in batch] == ["sg-0", "sg-1", "sg-2"]
    with pytest.raises(ValueError, match="count"):
        sample_body("sendgrid", count=0)


def test_sample_body_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown provider kind"):
        sample_body("mailgun")


@pytest.mark.parametrize("kind", ["stripe", "github", "shopify", "standard"])
async def test_refusals_never_carry_secrets_or_signatures(kind: str) -> None:
    good, bad = {"standard": ("whsec_Z29vZC1zZWNyZXQ=", "whsec_YmFkLXNlY3JldA==")}.get(
        kind, ("good-1", "bad-2")
    )
    signers_by_kind: dict[str, Callable[[bytes, str], dict[str, str]]] = {
        "stripe": lambda body, secret: sign_stripe(body, secret, 1_700_000_000),
        "github": lambda body, secret: sign_github(body, secret, delivery="d"),
        "shopify": lambda body, secret: sign_shopify(body, secret, webhook_id="w"),
        "standard": lambda body, secret: sign_standard(body, secret, timestamp=1_700_000_000, msg_id="m"),
    }
    sign = signers_by_kind[kind]
    body = b'{"id": "e", "type": "t"}'
    expected, received = sign(body, good), sign(body, bad)
    verifier = build_verifier(name=kind, kind=kind, settings=provider(kind, good))
    with pytest.raises(BadSignature) as caught:
        await verifier.verify(body, {k.lower(): v for k, v in received.items()}, 1_700_000_000)
    message = str(caught.value)
    signature_values = [v for v in [*expected.values(), *received.values()] if len(v) > 20]
    for value in [good, bad, good.removeprefix("whsec_"), *signature_values]:
        assert value not in message
    for value in signature_values:  # nor any long piece of one
        assert not any(value[i : i + 16] in message for i in range(len(value) - 16))
