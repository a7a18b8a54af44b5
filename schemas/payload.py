"""The one JSON parser for provider bodies: what the edge accepts is exactly what the worker can parse.

The edge checks a body with :func:`parse_json` before it answers 202, and the worker parses the same
bytes with the same function when it writes the event record (:mod:`schemas.events`), so a body can
no longer be accepted at the edge and then dead-lettered as ``malformed_payload``, and every record
on ``webhooks.events`` is strict JSON. The grammar is RFC 8259 and nothing more:

- UTF-8 only (RFC 8259 §8.1). UTF-16/32 bodies are refused, and so is a UTF-8 byte order mark:
  §8.1 says senders MUST NOT add one, no provider does, and stripping it would make the stored body
  differ from the signed bytes that a consumer re-verifies.
- No ``NaN``/``Infinity``, and every number must be finite as a double: ``1e999`` is refused rather
  than becoming ``inf`` (which no JSON can carry downstream). Integers of any size stay exact.
- No lone surrogates, escaped (``"\\ud800"``) or raw: every string encodes to UTF-8.
- Containers nest at most :data:`JSON_MAX_DEPTH` deep.

The parser is jiter (inside pydantic-core, the worker's parser all along); the finite-number check
is ours, since jiter reads ``1e999`` as ``inf``. orjson was measured too: it silently turns integers
beyond 64 bits into floats (a changed value downstream), so it is not used.
"""

from __future__ import annotations

import math
from typing import Any

import pydantic_core

from services.errors import BreakwaterError

JSON_MAX_DEPTH = 200
"""Arrays and objects nested this deep still hold a value; one more is refused (jiter's limit)."""

_BOM = b"\xef\xbb\xbf"
# jiter reads an out-of-range number (1e999) as inf. Serializing the value back (Rust, about the cost
# of the parse) shows any: an inf is written as the bare constant Infinity. Only then, or when a string
# holds that word, is the tree walked for the path. (A regular expression over the body cost 50x the
# parse on a 1 MiB body, and a Python walk of every node 10x on a SendGrid batch.)
_INFINITY = b"Infinity"


class MalformedPayload(BreakwaterError):
    """The body claims to be JSON and is not strict JSON: no retry can fix it. The message says why."""


def _utf16_or_32(body: bytes) -> bool:
    """A UTF-16/32 byte order mark, or a NUL in the first bytes (UTF-8 JSON text never has one)."""
    return body[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in body[:4]


def _first_infinity(value: Any) -> str | None:
    """The JSON path of the first non-finite float in ``value``, or None."""
    stack: list[tuple[str, Any]] = [("$", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return path
        elif isinstance(item, dict):
            stack.extend((f"{path}.{key}", child) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", child) for index, child in enumerate(item))
    return None


def parse_json(body: bytes) -> Any:
    """The value of a strict RFC 8259 UTF-8 JSON body; :class:`MalformedPayload` naming what is wrong."""
    if body.startswith(_BOM):
        raise MalformedPayload("starts with a UTF-8 byte order mark (RFC 8259 §8.1: JSON has none)")
    if _utf16_or_32(body):
        raise MalformedPayload("is not UTF-8 (it looks like UTF-16 or UTF-32; JSON must be UTF-8)")
    try:
        value = pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        reason = str(exc)
        if reason.startswith("recursion limit exceeded"):
            reason = f"nests deeper than {JSON_MAX_DEPTH} levels ({reason})"
        raise MalformedPayload(reason) from None
    if _INFINITY in pydantic_core.to_json(value, inf_nan_mode="constants"):
        path = _first_infinity(value)
        if path is not None:
            raise MalformedPayload(f"number at {path} is out of range (not a finite double)")
    return value
