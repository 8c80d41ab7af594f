"""Every third-party package the package or the built-in plugins import is declared in
setup.cfg's ``install_requires`` (a wheel installed elsewhere must not depend on luck)."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OURS = {"aliecs_integration", "aliecs_integration_plugins"}
DEV_ONLY = {"grpc_tools": "schema.generate() regenerates the bindings: the dev extra's protoc"}


def imported_top_level_modules() -> dict[str, str]:
    """Top-level module -> first file importing it, over the package and plugins/."""
    found: dict[str, str] = {}
    for folder in (ROOT / "aliecs_integration", ROOT / "plugins"):
        for path in sorted(folder.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def declared() -> set[str]:
    text = (ROOT / "setup.cfg").read_text()
    block = re.search(r"^install_requires =\n((?:[ \t]+\S.*\n)+)", text, re.MULTILINE)
    assert block is not None, "setup.cfg has no install_requires"
    return {re.split(r"[<>=!~; \[]", line.strip())[0].lower().replace("_", "-")
            for line in block[1].splitlines() if line.strip()}


def test_every_imported_third_party_package_is_declared() -> None:
    distributions = packages_distributions()
    missing = {}
    for module, where in imported_top_level_modules().items():
        if module in OURS | DEV_ONLY.keys() or module in sys.stdlib_module_names or (
                module == "__future__"):
            continue
        dists = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
        assert dists, f"{where} imports {module}, which no installed distribution provides"
        if not dists & declared():
            missing[module] = (where, sorted(dists))
    assert missing == {}, f"imported but not in install_requires: {missing}"
