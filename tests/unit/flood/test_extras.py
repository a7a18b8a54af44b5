"""Without the ``tooling`` extra the CLI still starts, and ``breakwater flood`` says how to get it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from services.cli.main import app
from services.flood.extras import INSTALL_HINT, TOOLING_MODULES

HIDDEN = "; ".join(f"sys.modules[{name!r}] = None" for name in TOOLING_MODULES)


@pytest.mark.parametrize("module", TOOLING_MODULES)
def test_flood_without_a_tooling_module_names_the_install_command(
    module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what `import module` sees when it is not installed
    result = CliRunner().invoke(app, ["flood", "--scale", "0.01"])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)  # typer.Exit, not an ImportError's traceback
    assert result.output.strip() == (
        f"error: breakwater flood needs {module} (the tooling extra): {INSTALL_HINT}"
    )
    assert "pip install 'breakwater[tooling]'" in result.output and "make venv" in result.output


def _cli_without_tooling(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh interpreter where neither psutil nor matplotlib can be imported."""
    code = f"import sys; {HIDDEN}; from services.cli.main import app; app({list(args)!r})"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_the_cli_and_flood_help_load_without_the_extra() -> None:
    shown = _cli_without_tooling("flood", "--help")
    assert shown.returncode == 0, shown.stderr
    assert "--scale" in shown.stdout
    refused = _cli_without_tooling("flood")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"error: breakwater flood needs psutil and matplotlib (the tooling extra): {INSTALL_HINT}"
    ]
