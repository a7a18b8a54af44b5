"""Process start-up shared by the edge and the worker: keep start-up objects out of the collector's way,
and keep the allocator from holding on to RocksDB's large transient buffers.

Imported modules, pydantic schemas, OpenTelemetry and aiokafka leave a few hundred thousand objects that
live as long as the process, and every full (generation 2) collection walks them all: on the edge under
load each one took 50-60 ms, about every two seconds, and those pauses were its p99 (79 ms; 28-31 ms
with them frozen, ``make bench-edge``). ``gc.freeze()`` moves what exists at start-up to a generation the
collector never scans; garbage made later is collected as before.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os

log = logging.getLogger(__name__)

MMAP_THRESHOLD_BYTES = 128 << 10  # glibc's own starting value, kept fixed
_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h


def freeze_startup_objects() -> None:
    """Collect once, then freeze what is left. Call once per process, after start-up, before serving.

    Not for test processes: there, objects of earlier tests would be frozen along with them.
    """
    gc.collect()
    gc.freeze()


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold, so large blocks are mapped on their own and unmapped when freed.

    glibc raises the threshold each time a mapped block is freed, up to 32 MB. RocksDB's compactions
    free buffers of a few MB, so after a while those buffers come from the heap instead. Blocks that
    live longer end up between them, and the heap cannot give the space back: the worker grew
    ~0.5 MB a minute outside its dedup budget for 40 minutes (``benchmarks.soak``). With the
    threshold fixed, a 20-minute soak grew 6.8% and levelled off; with glibc's default it grew 14%
    and kept growing. False, and nothing changed, when the C library is not glibc or the operator
    set ``MALLOC_MMAP_THRESHOLD_``.
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except AttributeError:  # not glibc (musl, macOS): its allocator has its own policy
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, threshold))
    if not done:
        log.warning("mallopt(M_MMAP_THRESHOLD, %d) was refused", threshold)
    return done
