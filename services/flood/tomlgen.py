"""A minimal TOML writer for the flood's generated config (the project ships a reader, no writer).

Top-level scalars first, then one ``[table]`` per nested mapping; lists and mappings inside a table
are written inline, which is all the settings model's shape needs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _table(path: str, table: Mapping[str, Any], out: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not _is_table(v)}
    if path and (scalars or not table):
        out.append(f"\n[{path}]")
    out.extend(f"{_key(k)} = {_value(v)}" for k, v in scalars.items())
    for key, value in table.items():
        if _is_table(value):
            _table(f"{path}.{_key(key)}" if path else _key(key), value, out)


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping)


def dumps(data: Mapping[str, Any]) -> str:
    """TOML text for ``data``: nested mappings become tables, everything else is written inline."""
    out: list[str] = []
    _table("", data, out)
    return "\n".join(out).lstrip("\n") + "\n"
