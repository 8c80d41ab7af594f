"""The package's import graph has no cycle, counting imports inside functions too (a cycle
hidden by a function-local import is still a cycle), and the CLI sits on top: no library module
imports ``aliecs_integration.cli``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"aliecs_integration": ROOT / "aliecs_integration",
            "aliecs_integration_plugins": ROOT / "plugins"}


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for name, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([name, *parts])] = path
    return found


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """Modules of ours that ``module`` imports, anywhere in the file. ``from pkg import name``
    counts as importing ``pkg.name`` when that is a module, else ``pkg``."""
    out: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                if candidate in known:
                    out.add(candidate)
                elif base in known:
                    out.add(base)
    out.discard(module)
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {m: imports_of(m, p, known) for m, p in found.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_graph_is_read() -> None:
    edges = graph()
    assert "aliecs_integration.host" in edges["aliecs_integration.scenario.session"]
    assert "aliecs_integration.settings.producer" in edges["aliecs_integration.settings.core"]


def test_no_import_cycle_anywhere() -> None:
    edges = graph()
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges) or [])


def test_a_cycle_is_found_when_there_is_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_library_modules_never_import_the_cli() -> None:
    edges = graph()
    for module, targets in edges.items():
        if module.startswith("aliecs_integration.cli") or module == "aliecs_integration.__main__":
            continue  # the CLI itself, and `python -m aliecs_integration` (an entry point)
        bad = sorted(t for t in targets if t.startswith("aliecs_integration.cli"))
        assert bad == [], f"{module} imports {bad}"
