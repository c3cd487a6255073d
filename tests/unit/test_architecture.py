"""The core depends on nothing but the standard library and attrs."""

import ast
import sys
from pathlib import Path

import usage_core

ALLOWED = set(sys.stdlib_module_names) | {"attrs", "usage_core", "__future__"}


def imported_roots(path: Path) -> set[str]:
    """The top-level names of every module a source file imports."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


class TestCorePurity:
    """Complements import-linter's contracts, which can only list what is forbidden."""

    def test_core_imports_only_stdlib_and_attrs(self) -> None:
        """Every import in usage_core is the standard library, attrs or the core itself."""
        package = Path(usage_core.__file__).parent
        offenders = {
            f"{path.name}: {root}"
            for path in package.rglob("*.py")
            for root in imported_roots(path) - ALLOWED
        }
        assert not offenders

    def test_core_reads_no_clock_or_environment(self) -> None:
        """No core module reads the system clock or the environment; time comes via ports."""
        package = Path(usage_core.__file__).parent
        forbidden = (
            "datetime.now",
            "datetime.utcnow",
            "date.today",
            "time.time",
            "time.monotonic",
            "os.environ",
            "getenv",
            "random.",
        )
        for path in package.rglob("*.py"):
            source = path.read_text(encoding="utf-8")
            assert not [f for f in forbidden if f in source], path.name
