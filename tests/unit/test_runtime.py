"""The worker's allocator setting does what it says, in a process of its own (glibc state is global)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from services.runtime import fix_mmap_threshold

ROOT = Path(__file__).parents[2]
# Frees a large mapped block (glibc then raises its threshold past 1 MB unless it is fixed), then prints
# how many mapped blocks a 1 MB allocation added: 1 when mapped on its own, 0 when taken from the heap.
PROCESS = """
import ctypes, sys
from services.runtime import fix_mmap_threshold

class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold()
libc.free(libc.malloc(4 << 20))
before = libc.mallinfo2().hblks
block = libc.malloc(1 << 20)
print(libc.mallinfo2().hblks - before)
libc.free(block)
"""
glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt's threshold is glibc's")


def _mapped_blocks(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", PROCESS, mode], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@glibc
def test_a_fixed_threshold_keeps_large_blocks_out_of_the_heap_after_a_large_free() -> None:
    assert _mapped_blocks("default") == 0  # glibc's moving threshold: the 1 MB block came from the heap
    assert _mapped_blocks("fixed") == 1


def test_an_operators_own_setting_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert fix_mmap_threshold() is False
