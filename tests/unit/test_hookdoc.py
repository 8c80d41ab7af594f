"""The plugin authors' documentation shows every hook with its exact signature."""

from __future__ import annotations

import inspect
from pathlib import Path

import pluggy

from aliecs_integration import hookdoc, hookspecs

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def test_docs_hold_the_current_reference() -> None:
    text = DOC.read_text()
    start = text.index(hookdoc.BEGIN)
    end = text.index(hookdoc.END) + len(hookdoc.END)
    assert text[start:end] == hookdoc.render(), (
        "docs/plugins.md is stale: run python -m aliecs_integration.hookdoc docs/plugins.md"
    )


def test_every_registered_spec_is_documented_with_its_signature() -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    spec_names = {name for name in dir(pm.hook) if isinstance(getattr(pm.hook, name),
                                                               pluggy.HookCaller)}
    documented = {name for name, _ in hookdoc.hook_functions()}
    assert spec_names == documented
    text = DOC.read_text()
    for name, fn in hookdoc.hook_functions():
        sig = inspect.signature(fn)
        params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
        assert f"def {name}({params}) -> {sig.return_annotation}" in text
        assert f"### `{name}`" in text


def test_spec_parameters_are_event_only() -> None:
    for name, fn in hookdoc.hook_functions():
        params = list(inspect.signature(fn).parameters)
        assert params == ([] if name == "register_call_functions" else ["event"]), name
