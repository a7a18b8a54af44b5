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
    """Resolve a reference; an empty secret (blank literal, empty variable or file) is refused.

    An HMAC key of nothing would verify whatever anyone signs with nothing.
    """
    if not isinstance(value, str):
        return value
    resolved = resolve_secret(value)
    if not resolved.strip():
        if value.startswith(("env:", "file:")):
            kind, _, name = value.partition(":")
            where = "environment variable" if kind == "env" else "file"
            raise ValueError(f"secret is empty ({where} {name})")
        raise ValueError("secret is empty")
    return resolved


Secret = Annotated[SecretStr, BeforeValidator(_resolve)]
