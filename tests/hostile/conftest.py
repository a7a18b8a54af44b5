"""The hostile suite: generated bad input against the real broker, edge and workers.

``BREAKWATER_HOSTILE_EXAMPLES`` sets how many generated pipeline runs a property test makes (default 2);
``BREAKWATER_HOSTILE_SEED`` pins hypothesis' seed to replay a run (a failure also prints
``@reproduce_failure`` for the exact example).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, seed, settings

F = TypeVar("F", bound=Callable[..., Any])

EXAMPLES = int(os.environ.get("BREAKWATER_HOSTILE_EXAMPLES", "2"))
SEED = os.environ.get("BREAKWATER_HOSTILE_SEED")

# Each example is a whole pipeline run on the real broker: no shrinking (it would re-run dozens of
# pipelines), no deadline, and the blob that reproduces the failing example is printed.
real_broker = settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    print_blob=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def pinned(test: F) -> F:
    """Apply ``BREAKWATER_HOSTILE_SEED`` when set, so a printed seed replays the same inputs."""
    return seed(int(SEED))(test) if SEED else test
