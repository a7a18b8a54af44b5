"""Secret references: ``env:NAME``, ``file:PATH`` or a literal, resolved once when settings load.

Its own module so that every settings section (the main model, the outbound APIs) can use
:data:`Secret` without importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, SecretStr


def resolve_secret(reference: str) -> str:
    """Turn ``env:NAME``, ``file:PATH`` or a literal into the secret's value."""
    if reference.startswith("env:"):
        name = reference[4:]
        value = os.environ.get(name)
        if value is None:
            raise ValueError(f"environment variable {name} is not set")
        return value
    if reference.startswith("file:"):
        path = Path(reference[5:]).expanduser()
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from exc
    return reference


def _resolve(value: Any) -> Any:
    if isinstance(value, str):
        return resolve_secret(value)
    return value


Secret = Annotated[SecretStr, BeforeValidator(_resolve)]
