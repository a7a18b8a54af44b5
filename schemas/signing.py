"""Envelope signatures: proof that a record on ``webhooks.inbound`` came from a trusted edge.

The edge signs the serialized envelope value with HMAC-SHA256 under its active key and puts the key id
and the signature in Kafka headers. Verifiers accept any configured key, so keys rotate without a
flag day: add the new key everywhere, switch ``active_key_id``, later drop the old key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from schemas.headers import KEY_ID_HEADER, SIGNATURE_HEADER
from services.errors import BreakwaterError

KafkaHeaders = list[tuple[str, bytes]]


class EnvelopeSignatureError(BreakwaterError):
    """The record was not signed by a trusted edge; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _SecretText(Protocol):
    def get_secret_value(self) -> str: ...


class SigningKeys(Protocol):
    """The signing settings (``services.config.SigningSettings``) as :meth:`EnvelopeSigner.of` reads them."""

    @property
    def keys(self) -> Mapping[str, _SecretText]: ...

    @property
    def active_key_id(self) -> str: ...


@dataclass(frozen=True)
class EnvelopeSigner:
    """Signs with ``active_key_id``; verifies with any key in ``keys``."""

    keys: Mapping[str, bytes]
    active_key_id: str

    def __post_init__(self) -> None:
        if self.active_key_id not in self.keys:
            raise ValueError(f"active key {self.active_key_id!r} is not among the keys")

    @classmethod
    def of(cls, signing: SigningKeys) -> EnvelopeSigner:
        """The signer the edge, the worker and the replay share: ``EnvelopeSigner.of(settings.signing)``."""
        keys = {key_id: secret.get_secret_value().encode() for key_id, secret in signing.keys.items()}
        return cls(keys=keys, active_key_id=signing.active_key_id)

    def sign(self, value: bytes) -> KafkaHeaders:
        digest = hmac.new(self.keys[self.active_key_id], value, hashlib.sha256).hexdigest()
        return [(KEY_ID_HEADER, self.active_key_id.encode()), (SIGNATURE_HEADER, digest.encode())]

    def verify(self, value: bytes, headers: Iterable[tuple[str, bytes]] | None) -> str:
        """Return the key id that signed ``value``, or raise :class:`EnvelopeSignatureError`."""
        found = {name: raw for name, raw in headers or ()}
        key_id_raw = found.get(KEY_ID_HEADER)
        signature = found.get(SIGNATURE_HEADER)
        if key_id_raw is None or signature is None:
            raise EnvelopeSignatureError("record has no envelope signature headers")
        key_id = key_id_raw.decode("utf-8", "replace")
        key = self.keys.get(key_id)
        if key is None:
            raise EnvelopeSignatureError(f"envelope signed with unknown key id {key_id!r}")
        expected = hmac.new(key, value, hashlib.sha256).hexdigest().encode()
        if not hmac.compare_digest(expected, signature):
            raise EnvelopeSignatureError(f"envelope signature does not match key {key_id!r}")
        return key_id
