"""The one base of every settings section, in the root model (services/config.py) and in the features'.

It imports only pydantic, so a feature's settings module (``services/outbound/config.py``,
``services/reliability/config.py``) can build on it, and the root can validate every section at start,
without importing the feature's runtime code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator


class Section(BaseModel):
    """Frozen (hashable, shared safely), and an unknown key fails at start with its dotted name.

    ``renamed`` maps a key the section used to have to how it is spelled now, so an old configuration
    fails naming both instead of only "extra inputs are not permitted".
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    renamed: ClassVar[Mapping[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _no_renamed_keys(cls, data: Any) -> Any:
        old = [key for key in cls.renamed if key in data] if isinstance(data, Mapping) else []
        if old:
            raise ValueError("; ".join(f"{key} is now spelled {cls.renamed[key]}" for key in old))
        return data
