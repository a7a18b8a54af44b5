"""SIGTERM unwinds through ``finally``, and a second one does not cut the cleanup short."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
# Works until told to stop (the file ``finish`` appears), then cleans up until told again (``done``).
PROCESS = """
import sys, time
from pathlib import Path
from services.flood.shutdown import SigtermUnwinds

state, finish, done = (Path(p) for p in sys.argv[1:])
def wait_for(path):
    while not path.exists():
        time.sleep(0.01)
with SigtermUnwinds() as sigterm:
    try:
        state.write_text("working")
        wait_for(finish)
    finally:
        sigterm.hold()
        state.write_text("cleaning")
        wait_for(done)
        state.write_text("cleaned")
"""


def _until(state: Path, text: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while not (state.exists() and state.read_text() == text):
        assert process.poll() is None, f"exited {process.returncode} before {text!r}"
        assert time.monotonic() < deadline, f"never {text!r}"
        time.sleep(0.01)  # another process's progress: polled, bounded


@pytest.mark.parametrize("stopped", [True, False], ids=["terminated", "finished"])
def test_cleanup_runs_to_its_end_through_a_second_sigterm(stopped: bool, tmp_path: Path) -> None:
    state, finish, done = tmp_path / "state", tmp_path / "finish", tmp_path / "done"
    command = [sys.executable, "-c", PROCESS, str(state), str(finish), str(done)]
    process = subprocess.Popen(command, cwd=ROOT)
    try:
        _until(state, "working", process)
        if stopped:
            process.send_signal(signal.SIGTERM)
        else:
            finish.touch()
        _until(state, "cleaning", process)
        process.send_signal(signal.SIGTERM)  # held: the cleanup under way answers it
        done.touch()
        assert process.wait(timeout=20) == (128 + signal.SIGTERM if stopped else 0)
        assert state.read_text() == "cleaned"
    finally:
        process.kill()
