"""Process start-up shared by the edge and the worker: keep start-up objects out of the collector's way.

Imported modules, pydantic schemas, OpenTelemetry and aiokafka leave a few hundred thousand objects that
live as long as the process, and every full (generation 2) collection walks them all: on the edge under
load each one took 50-60 ms, about every two seconds, and those pauses were its p99 (79 ms; 28-31 ms
with them frozen, ``make bench-edge``). ``gc.freeze()`` moves what exists at start-up to a generation the
collector never scans; garbage made later is collected as before.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Collect once, then freeze what is left. Call once per process, after start-up, before serving.

    Not for test processes: there, objects of earlier tests would be frozen along with them.
    """
    gc.collect()
    gc.freeze()
