"""Each contract test gets its own pipeline (topic prefix, app id, state dir) on the run's broker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.pipeline import pipeline_config


@pytest.fixture
def config(kafka_bootstrap: str, unique: Callable[[str], str], tmp_path: Path) -> dict[str, Any]:
    return pipeline_config(kafka_bootstrap, unique("contract"), tmp_path / "state")
