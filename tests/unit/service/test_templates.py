"""Workflow templates of serve: built-in default plus YAML directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from aliecs_integration.engine.workflow import WorkflowError
from aliecs_integration.service.templates import TemplateCatalog, UnknownTemplate


def write(path: Path, name: str) -> None:
    path.write_text(f"name: {name}\ndescription: the {name} one\n")


def test_default_and_directory_templates(tmp_path: Path) -> None:
    write(tmp_path / "readout.yaml", "readout-dataflow")
    catalog = TemplateCatalog([tmp_path])
    assert [(t.name, t.repo) for t in catalog.templates()] == [
        ("default", "builtin"), ("readout-dataflow", str(tmp_path))]
    assert catalog.get("readout-dataflow").workflow.description == "the readout-dataflow one"
    # the reference's form: repository/workflows/name@revision
    assert catalog.get("github.com/x/ControlWorkflows/workflows/readout-dataflow@master").name == (
        "readout-dataflow")
    with pytest.raises(UnknownTemplate, match="known templates: default, readout-dataflow"):
        catalog.get("nosuch")


def test_bad_directories_and_duplicates_are_errors(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError, match="does not exist"):
        TemplateCatalog([tmp_path / "missing"])
    write(tmp_path / "a.yaml", "same")
    write(tmp_path / "b.yaml", "same")
    with pytest.raises(WorkflowError, match=r"b\.yaml: workflow name 'same' is already defined by"):
        TemplateCatalog([tmp_path])
    (tmp_path / "b.yaml").write_text("name: [broken\n")
    with pytest.raises(WorkflowError, match=r"b\.yaml"):
        TemplateCatalog([tmp_path])
