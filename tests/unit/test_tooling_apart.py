"""The product and its tooling stay apart: the benchmarks import nothing from ``tests/``, and only the
tooling imports the ``tooling`` extra (psutil, matplotlib)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLING = ("services/flood/", "benchmarks/")
EXTRA = frozenset({"psutil", "matplotlib"})


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports, anywhere in it (inside functions too), with its line."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def sources(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (REPO / folder).rglob("*.py"))


def test_the_benchmarks_import_nothing_from_tests() -> None:
    found = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in sources("benchmarks")
        for line, name in imported(path)
        if name == "tests" or name.startswith("tests.")
    ]
    assert sources("benchmarks"), "no benchmark modules found: the walk looks in the wrong place"
    assert found == []


def test_only_the_tooling_imports_the_tooling_extra() -> None:
    found = [
        f"{relative}:{line} imports {name}"
        for path in sources("services", "streams", "schemas")
        if not (relative := path.relative_to(REPO).as_posix()).startswith(TOOLING)
        for line, name in imported(path)
        if name.split(".")[0] in EXTRA
    ]
    assert found == []


def test_the_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f() -> None:\n    from tests.support import pipeline\n    import psutil\n")
    assert list(imported(module)) == [(2, "tests.support"), (3, "psutil")]
