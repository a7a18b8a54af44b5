"""Each operator test gets its own topics and dead letters on the run's broker."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.operators.seed import Seeded, seed


@pytest.fixture
async def seeded(kafka_bootstrap: str, unique: Callable[[str], str]) -> Seeded:
    return await seed(kafka_bootstrap, unique("ops"))
