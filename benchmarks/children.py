"""Run a benchmark's child process so that stopping the parent stops the child cleanly first.

``subprocess.run`` answers an interrupt with SIGKILL to its child, and a parent stopped by SIGTERM
(``kill``, a CI timeout) does not tell its child at all: either way a flood under a soak left its
broker, edge and worker running. Here the child gets SIGTERM and time to unwind its own cleanup.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence

__all__ = ["run_to_end"]

STOP_GRACE_SECONDS = 120.0  # a flood stops a broker, an edge, a worker and a simulator


def run_to_end(command: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Run ``command`` to its end and return its exit code; on SIGTERM or Ctrl-C, stop it, then re-raise."""
    child = subprocess.Popen(list(command), env=env)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _unwind) if main else None
    try:
        return child.wait()
    except BaseException:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _unwind(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
