"""SIGTERM as an exception, so that a process stopped by ``kill`` or a CI timeout runs its cleanup.

Python's default SIGTERM ends the process at once: ``finally`` blocks do not run, and whatever the
process started (a broker, an edge, a worker) keeps running. Inside :class:`SigtermUnwinds` the first
SIGTERM raises ``SystemExit(143)`` instead; later ones are held off so the cleanup it starts runs to its
end. Held off by a Python handler, not ``SIG_IGN``, which processes spawned meanwhile would inherit.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, NoReturn

__all__ = ["SigtermUnwinds", "stop_process"]


class SigtermUnwinds:
    """``with SigtermUnwinds() as sigterm:`` ... ``finally: sigterm.hold(); cleanup()``.

    Only the main thread may set handlers; elsewhere this does nothing.
    """

    def __init__(self) -> None:
        self._main = threading.current_thread() is threading.main_thread()
        self._previous: Callable[[int, FrameType | None], Any] | int | None = None

    def __enter__(self) -> SigtermUnwinds:
        if self._main:
            self._previous = signal.signal(signal.SIGTERM, _unwind_once)
        return self

    def hold(self) -> None:
        """From now on a SIGTERM changes nothing: call it where the cleanup starts."""
        if self._main:
            signal.signal(signal.SIGTERM, _held)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._main:
            previous = self._previous  # None: set outside Python, so the default is the nearest
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _unwind_once(signum: int, frame: FrameType | None) -> NoReturn:
    signal.signal(signal.SIGTERM, _held)
    raise SystemExit(128 + signum)


def _held(signum: int, frame: FrameType | None) -> None:
    """A SIGTERM while cleaning up: the cleanup already under way is the answer to it."""


def stop_process(child: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM ``child``, give it ``grace`` seconds to clean up, then SIGKILL (also when interrupted)."""
    try:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
