"""Run a benchmark's child process so that stopping the parent stops the child cleanly first.

``subprocess.run`` answers an interrupt with SIGKILL to its child, and a parent stopped by SIGTERM
(``kill``, a CI timeout) does not tell its child at all: either way a flood under a soak left its
broker, edge and worker running. Here the child is asked to stop and given time to run its cleanup;
SIGKILL is the last resort. The benchmarks run by it unwind on SIGTERM (:mod:`services.shutdown`).
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Mapping, Sequence

from services.shutdown import SigtermUnwinds

__all__ = ["run_to_end"]

STOP_GRACE_SECONDS = 120.0  # a flood stops a broker, an edge, a worker and a simulator
INTERRUPT_GRACE_SECONDS = 10.0


def run_to_end(command: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Run ``command`` to its end and return its exit code; on SIGTERM or Ctrl-C, stop it, then re-raise."""
    with SigtermUnwinds() as sigterm:
        child = subprocess.Popen(list(command), env=env)
        try:
            return child.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached the child too (one process group): a SIGTERM now would cut its cleanup short
            sigterm.hold()
            _stop(child, first_wait=INTERRUPT_GRACE_SECONDS)
            raise
        except BaseException:
            sigterm.hold()
            _stop(child, first_wait=0.0)
            raise


def _stop(child: subprocess.Popen[bytes], first_wait: float) -> None:
    """Let ``child`` end by itself for ``first_wait`` s, then SIGTERM it; SIGKILL if that is not enough."""
    try:
        for wait, then in ((first_wait, signal.SIGTERM), (STOP_GRACE_SECONDS, signal.SIGKILL)):
            try:
                child.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                child.send_signal(then)
    finally:
        if child.poll() is None:  # a second Ctrl-C while waiting: no orphan either way
            child.kill()
            child.wait()
