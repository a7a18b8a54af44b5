"""The ``tooling`` extra: what the flood and the benchmarks need that running Breakwater does not.

psutil measures each process's RSS and CPU seconds; matplotlib draws the flood's plot. ``make`` installs
the extra (``pip install -e '.[test,tooling]'``); ``pip install breakwater`` alone does not, so a command
that needs it checks first and says how to get it, rather than failing on an import deep inside.
"""

from __future__ import annotations

import importlib

from services.errors import BreakwaterError

__all__ = ["INSTALL_HINT", "TOOLING_MODULES", "ToolingMissing", "require_tooling"]

TOOLING_MODULES = ("psutil", "matplotlib")
INSTALL_HINT = "pip install 'breakwater[tooling]' (in a checkout: make venv)"


class ToolingMissing(BreakwaterError):
    """A module of the tooling extra is not installed; the message says how to install it."""


def require_tooling(command: str) -> None:
    """Raise :class:`ToolingMissing` naming every missing module and the install command."""
    missing = [name for name in TOOLING_MODULES if not _importable(name)]
    if missing:
        raise ToolingMissing(f"{command} needs {' and '.join(missing)} (the tooling extra): {INSTALL_HINT}")


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True
