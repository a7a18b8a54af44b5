"""Standard Webhooks signing (https://www.standardwebhooks.com), defined once for both directions.

The edge verifies providers with it (:mod:`services.edge.verifiers.standard`), the test signers sign
with it (:mod:`services.edge.verifiers.signers`), and HTTP deliveries are signed with it
(:mod:`streams.destinations`). The signed content is ``f"{id}.{timestamp}.{body}"``; the signature is
HMAC-SHA256 under the decoded key of a ``whsec_<base64>`` secret, sent as ``v1,<base64>``, several
space-separated while keys rotate. Only the standard library, so the settings module can use it too.

>>> key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
>>> signature_header([key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

__all__ = [
    "ID_HEADER",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "decode_secret",
    "digest",
    "signature_header",
    "signed_headers",
]

SECRET_PREFIX = "whsec_"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix is optional, as in the reference library)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("secret is not whsec_ followed by base64") from None
    if not key:
        raise ValueError("secret is empty after the whsec_ prefix")
    return key


def digest(key: bytes, msg_id: str, timestamp: int | str, body: bytes) -> bytes:
    """The raw HMAC-SHA256 of ``f"{msg_id}.{timestamp}.{body}"`` (what a verifier compares)."""
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def signature_header(keys: Iterable[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per key, space-separated."""
    return " ".join(f"v1,{base64.b64encode(digest(key, msg_id, timestamp, body)).decode()}" for key in keys)


def signed_headers(
    keys: Iterable[bytes], msg_id: str, timestamp: int, body: bytes, *, prefix: str = "webhook"
) -> dict[str, str]:
    """``{prefix}-id``, ``{prefix}-timestamp`` and ``{prefix}-signature`` (``prefix="svix"`` for Svix)."""
    return {
        f"{prefix}-id": msg_id,
        f"{prefix}-timestamp": str(timestamp),
        f"{prefix}-signature": signature_header(keys, msg_id, timestamp, body),
    }
