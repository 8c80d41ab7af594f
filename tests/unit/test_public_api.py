"""The public API for plugin authors: what docs/plugins.md promises is importable from the top
level, the example third-party plugin imports nothing else, and every hook keeps its signature."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import aliecs_integration
from aliecs_integration import hookspecs

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"


def documented_names() -> set[str]:
    text = DOC.read_text()
    section = text.split("<!-- public api: checked by tests/unit/test_public_api.py -->")[1]
    section = section.split("<!-- end public api -->")[0]
    names: set[str] = set()
    for row in section.splitlines():
        if row.startswith("| `"):
            names.update(re.findall(r"`([A-Za-z_]+)`", row.split("|")[1]))
    return names


def test_every_documented_name_is_exported_from_the_top_level() -> None:
    names = documented_names()
    assert len(names) > 20  # the table was found and parsed
    missing = sorted(n for n in names if not hasattr(aliecs_integration, n))
    assert missing == []
    assert names == set(aliecs_integration.__all__), (
        "docs/plugins.md and aliecs_integration.__all__ disagree: "
        f"{sorted(names ^ set(aliecs_integration.__all__))}")


def test_example_plugin_imports_only_the_top_level() -> None:
    sources = sorted((ROOT / "examples" / "third_party_plugin").rglob("*.py"))
    assert sources
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for module in modules:
                assert not module.startswith("aliecs_integration."), f"{path}: imports {module}"


# The exact signature of every hook: (name, parameters, return annotation). Changing one breaks
# every plugin that implements it, so it must be a deliberate change here and in the docs.
HOOKS = {
    "on_host_start": ("(event: 'HostStartEvent') -> 'None'"),
    "on_host_stop": ("(event: 'HostStopEvent') -> 'None'"),
    "register_call_functions": ("() -> 'Mapping[str, CallFunction]'"),
    "on_env_transition_step": ("(event: 'TransitionStepEvent') -> 'None'"),
    "on_env_enter_state": ("(event: 'StateChangeEvent') -> 'None'"),
    "on_env_leave_state": ("(event: 'StateChangeEvent') -> 'None'"),
    "on_call": ("(event: 'CallEvent') -> 'None'"),
    "on_integrated_service_event": ("(event: 'IntegratedServiceEvent') -> 'None'"),
    "on_run_sor_eor": ("(event: 'RunEvent') -> 'None'"),
    "on_task_event": ("(event: 'TaskEvent') -> 'None'"),
    "on_role_event": ("(event: 'RoleEvent') -> 'None'"),
    "on_core_event": ("(event: 'CoreEvent') -> 'None'"),
}


def test_every_hook_keeps_its_exact_signature() -> None:
    specs = {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
             if fn.__module__ == hookspecs.__name__}
    assert set(specs) == set(HOOKS)
    for name, expected in HOOKS.items():
        assert str(inspect.signature(specs[name])) == expected, name


def test_every_hook_is_documented() -> None:
    text = DOC.read_text()
    for name in HOOKS:
        assert f"### `{name}`" in text, name
