"""The one JSON parser (schemas.payload): strict RFC 8259, one set of limits, clear reasons."""

from __future__ import annotations

import json
import math
from typing import Any

import pydantic_core
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.payload import JSON_MAX_DEPTH, MalformedPayload, parse_json


def strict_stdlib(text: bytes) -> Any:
    """An independent strict reader: UTF-8 only, no NaN/Infinity, finite numbers, no lone surrogates."""

    def no_constant(name: str) -> Any:
        raise ValueError(f"non-standard constant {name}")

    def finite(token: str) -> float:
        value = float(token)
        if not math.isfinite(value):
            raise ValueError(f"number {token} is not finite")
        return value

    value = json.loads(text.decode("utf-8"), parse_constant=no_constant, parse_float=finite)
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate
    return value


def nested(depth: int) -> bytes:
    """``depth`` containers, objects and arrays, around one number."""
    objects, arrays = depth // 2, depth - depth // 2
    return b'{"a":' * objects + b"[" * arrays + b"1" + b"]" * arrays + b"}" * objects


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'\xef\xbb\xbf{"a":1}', "byte order mark"),
        ('{"a":1}'.encode("utf-16"), "not UTF-8"),
        ('{"a":1}'.encode("utf-16-le"), "not UTF-8"),
        ('{"a":1}'.encode("utf-32-be"), "not UTF-8"),
        (b'{"a":NaN}', "expected value"),
        (b'{"a":-Infinity}', "invalid number at line 1 column 7"),
        (b'{"a":1e999}', "number at $.a is out of range"),
        (b'{"a":[0,{"b":-1.5E+400}]}', "number at $.a[1].b is out of range"),
        (b'{"a":' + b"1" + b"0" * 400 + b".5}", "number at $.a is out of range"),
        (b'{"id":"evt_\\ud800"}', "hex escape"),
        (b'{"id":"\\udc00"}', "surrogate"),
        (b'{"id":"\xed\xa0\x80"}', "invalid unicode"),
        (b'{"id":"\xff"}', "invalid unicode"),
        (nested(JSON_MAX_DEPTH + 1), f"nests deeper than {JSON_MAX_DEPTH} levels"),
        (nested(5000), f"nests deeper than {JSON_MAX_DEPTH} levels"),
        (b'{"a":1} {"b":2}', "trailing characters"),
        (b"", "EOF"),
    ],
)
def test_refused_with_the_reason(body: bytes, words: str) -> None:
    with pytest.raises(MalformedPayload) as caught:
        parse_json(body)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (b'{"a":1e-999}', {"a": 0.0}),  # underflow is a finite zero
        (b'{"a":1.7976931348623157e308}', {"a": 1.7976931348623157e308}),
        (b'{"a":123456789012345678901234567890}', {"a": 123456789012345678901234567890}),  # exact
        (b'{"a":"\\ud83d\\ude00 \xc3\xa9"}', {"a": "\U0001f600 é"}),
        (b'{"file1234":"e100","x":"1e999"}', {"file1234": "e100", "x": "1e999"}),  # in strings: fine
        (b" [1, 2.5, true, null] \n", [1, 2.5, True, None]),
    ],
)
def test_accepted(body: bytes, value: Any) -> None:
    assert parse_json(body) == value


def test_the_depth_limit_is_exactly_jiters() -> None:
    """A jiter upgrade that moves its recursion limit fails here, so the documented limit stays true."""
    assert parse_json(nested(JSON_MAX_DEPTH)) is not None
    with pytest.raises(MalformedPayload):
        parse_json(nested(JSON_MAX_DEPTH + 1))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8")),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(codec="utf-8"), max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)

tokens = st.sampled_from(
    [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1E+400", b"1e-999", b"1e308", b'"\\ud800"', b'"\\udfff"',
     b'"\\ud800\\udc00"', b"\xef\xbb\xbf", b"\xed\xa0\x80", b"\x00", b"00", b"-", b"1.", b"[" * 300]
)  # fmt: skip


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_whatever_python_values_serialize_to_parses_back(value: Any) -> None:
    body = pydantic_core.to_json(value)
    assert parse_json(body) == strict_stdlib(body)


@given(json_values, tokens, st.integers(min_value=0, max_value=200))
@settings(max_examples=500, deadline=None)
def test_accepts_exactly_what_a_strict_reader_accepts(value: Any, token: bytes, where: int) -> None:
    text = pydantic_core.to_json(value)
    where = min(where, len(text))
    body = text[:where] + token + text[where:]
    try:
        expected: Any = strict_stdlib(body)
    except (ValueError, RecursionError):
        expected = MalformedPayload
    if expected is MalformedPayload:
        with pytest.raises(MalformedPayload):
            parse_json(body)
    else:
        assert parse_json(body) == expected
    # Whatever is accepted serializes back to strict JSON (what the worker writes downstream).
    try:
        accepted = parse_json(body)
    except MalformedPayload:
        return
    strict_stdlib(pydantic_core.to_json(accepted))
