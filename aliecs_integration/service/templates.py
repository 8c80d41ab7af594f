"""The workflow templates ``serve`` can load: the built-in ``default`` workflow and every
``*.yaml`` workflow file of the configured directories (loaded and validated at start, so a bad
file stops ``serve`` with an error naming it)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import attrs

from aliecs_integration.engine.workflow import Workflow, WorkflowError, default_workflow

BUILTIN_REPO = "builtin"


@attrs.frozen
class Template:
    """A loadable workflow and where it comes from (``repo``: a directory, or ``builtin``)."""

    name: str
    repo: str
    workflow: Workflow


class UnknownTemplate(WorkflowError):
    """No template has the requested name; the message lists the known ones."""


class TemplateCatalog:
    """Templates by name. Names come from the workflow's ``name``; a name defined twice is an
    error naming both files."""

    def __init__(self, directories: Iterable[Path] = ()) -> None:
        builtin = default_workflow()
        self._templates: dict[str, Template] = {
            builtin.name: Template(builtin.name, BUILTIN_REPO, builtin)}
        for directory in directories:
            if not directory.is_dir():
                raise WorkflowError(f"{directory}: workflow template directory does not exist")
            for path in sorted(directory.glob("*.yaml")):
                workflow = Workflow.from_yaml(path)
                known = self._templates.get(workflow.name)
                if known is not None:
                    where = known.workflow.path or known.repo
                    raise WorkflowError(
                        f"{path}: workflow name {workflow.name!r} is already defined by {where}")
                self._templates[workflow.name] = Template(workflow.name, str(directory),
                                                          workflow)

    def templates(self) -> list[Template]:
        """Every template, sorted by name."""
        return [self._templates[name] for name in sorted(self._templates)]

    def get(self, requested: str) -> Template:
        """The template named ``requested``; the reference's form ``<repo>/workflows/<name>@<rev>``
        is accepted too (repository and revision ignored). Raises :class:`UnknownTemplate`."""
        name = requested.strip().rsplit("/", 1)[-1].split("@", 1)[0]
        if name.endswith(".yaml"):
            name = name[: -len(".yaml")]
        template = self._templates.get(name)
        if template is None:
            known = ", ".join(sorted(self._templates))
            raise UnknownTemplate(
                f"unknown workflow template {requested!r}; known templates: {known}")
        return template
