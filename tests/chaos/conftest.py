"""Chaos tests run workers as subprocesses and ``kill -9`` them; each test has its own pipeline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.pipeline import pipeline_config


@pytest.fixture
def config(kafka_bootstrap: str, unique: Callable[[str], str], tmp_path: Path) -> dict[str, Any]:
    return pipeline_config(kafka_bootstrap, unique("chaos"), tmp_path / "state")
