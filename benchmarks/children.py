"""Run a benchmark's child process so that stopping the parent stops the child cleanly first.

``subprocess.run`` answers an interrupt with SIGKILL to its child, and a parent stopped by SIGTERM
(``kill``, a CI timeout) does not tell its child at all: either way a flood under a soak left its
broker, edge and worker running. Here the child is asked to stop and given time to run its cleanup;
SIGKILL is the last resort. The benchmarks run by it unwind on SIGTERM (:mod:`services.flood.shutdown`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence

from services.flood.shutdown import SigtermUnwinds, stop_process

__all__ = ["run_to_end"]

STOP_GRACE_SECONDS = 120.0  # a flood stops a broker, an edge, a worker and a simulator
INTERRUPT_GRACE_SECONDS = 10.0


def run_to_end(command: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Run ``command`` to its end and return its exit code; on SIGTERM or Ctrl-C, stop it, then re-raise."""
    with SigtermUnwinds() as sigterm:
        child = subprocess.Popen(list(command), env=env)
        try:
            return child.wait()
        except BaseException as stopped:
            sigterm.hold()
            # Ctrl-C reached the child too (one process group): a SIGTERM at once would cut its cleanup short
            on_its_own = INTERRUPT_GRACE_SECONDS if isinstance(stopped, KeyboardInterrupt) else 0.0
            try:
                child.wait(timeout=on_its_own)
            except subprocess.TimeoutExpired:
                pass
            finally:
                stop_process(child, STOP_GRACE_SECONDS)
            raise
