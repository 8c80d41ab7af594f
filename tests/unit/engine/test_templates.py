"""Workflow templates with a role tree, the role aggregation rules, the built-in task model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from aliecs_integration.engine.roles import RoleChange, RoleTree
from aliecs_integration.engine.tasks import LocalTasks, TaskRequest, TaskScheduler
from aliecs_integration.engine.workflow import (
    AGGREGATOR,
    CALL,
    TASK,
    TemplateRef,
    Workflow,
    WorkflowError,
    default_workflow,
)

TEMPLATE = """
name: rd
description: d
defaults: {dcs_enabled: true}
roles:
  - name: readout
    task: {class: readout, host: flp1}
  - name: qc
    critical: false
    task: {class: qc-task}
  - name: dcs
    roles:
      - name: sor
        call: {func: dcs.StartOfRun(), trigger: before_START_ACTIVITY+10, timeout: 5s,
               enabled: dcs_enabled, return: sor_out}
      - name: eor
        critical: false
        call: {func: dcs.EndOfRun(), trigger: after_STOP_ACTIVITY}
calls:
  - {func: p.Extra(), trigger: after_CONFIGURE}
"""


def test_template_roles_paths_and_calls(tmp_path: Path) -> None:
    path = tmp_path / "rd.yaml"
    path.write_text(TEMPLATE)
    wf = Workflow.from_yaml(path)
    assert [(r.path, r.kind, r.critical) for r in wf.role_tree.walk()] == [
        ("rd", AGGREGATOR, True), ("rd.readout", TASK, True), ("rd.qc", TASK, False),
        ("rd.dcs", AGGREGATOR, True), ("rd.dcs.sor", CALL, True), ("rd.dcs.eor", CALL, False)]
    assert [(r.task_class, r.host) for r in wf.task_roles()] == [("readout", "flp1"),
                                                                  ("qc-task", "")]
    sor, eor, extra = wf.calls
    assert (sor.role_path, sor.critical, sor.timeout, sor.enabled, sor.return_var) == (
        "rd.dcs.sor", True, 5.0, "dcs_enabled", "sor_out")
    assert (eor.role_path, eor.critical) == ("rd.dcs.eor", False)  # the role's flag
    assert (extra.role_path, extra.critical) == ("", False)  # a flat call: root, not critical
    assert wf.class_name("readout") == (
        "github.com/AliceO2Group/ControlWorkflows/tasks/readout@master")
    info = wf.template_info()
    assert (info.name, info.path, info.public) == ("rd", str(path), True)


def _roles(*roles: Any) -> dict[str, Any]:
    return {"name": "rd", "roles": list(roles)}


@pytest.mark.parametrize(("data", "message"), [
    (_roles({"name": "a", "colour": "red", "task": {"class": "x"}}),
     r"role rd\.a: unknown key\(s\) colour"),
    (_roles({"name": "a"}), r"role rd\.a: unknown role kind"),
    (_roles({"name": "a", "task": {"class": "x"}, "roles": []}), r"role rd\.a: unknown role kind"),
    (_roles({"name": "a", "task": {"class": "x"}}, {"name": "a", "task": {"class": "y"}}),
     r"role rd\.a: duplicate role name 'a' under rd"),
    (_roles({"name": "b", "roles": [{"name": "c", "call": {"func": "p.F()"}}]}),
     r"role rd\.b\.c\.call\.trigger: expected a non-empty string"),
    (_roles({"name": "a.b", "task": {"class": "x"}}), r"role rd\[0\]: key 'name'"),
    (_roles({"name": "a", "task": {}}), r"role rd\.a\.task\.class: expected a non-empty string"),
    (_roles({"name": "a", "call": {"func": "p.F()", "trigger": "DESTROY", "role": "x"}}),
     r"role rd\.a\.call: unknown key\(s\) role"),
    (_roles({"name": "a", "critical": "yes", "task": {"class": "x"}}),
     r"role rd\.a\.critical: expected true or false"),
])
def test_invalid_templates_name_the_role(data: Any, message: str) -> None:
    with pytest.raises(WorkflowError, match=message):
        Workflow.from_dict(data, source="src.yaml")


def test_a_role_containing_itself_is_a_cycle(tmp_path: Path) -> None:
    path = tmp_path / "cycle.yaml"
    path.write_text("name: rd\nroles:\n  - &loop\n    name: a\n    roles:\n      - *loop\n")
    assert isinstance(yaml.safe_load(path.read_text()), dict)  # YAML itself accepts it
    # the one YAML reader (safe_yaml) refuses a recursive alias before any role is built
    with pytest.raises(WorkflowError, match=rf"{path}: recursive alias at line 3"):
        TemplateRef(path).load()


def test_template_ref_loads_at_use_and_appends_calls(tmp_path: Path) -> None:
    path = tmp_path / "rd.yaml"
    ref = TemplateRef(path, default_workflow().calls[:1])
    assert (ref.template_info().name, ref.template_info().path) == ("rd", str(path))
    with pytest.raises(WorkflowError, match=r"rd\.yaml: file not found"):
        ref.load()
    path.write_text(TEMPLATE)
    assert len(ref.load().calls) == 4


def test_the_default_template_is_package_data() -> None:
    wf = default_workflow()
    assert wf.name == "default" and wf.path.endswith("aliecs_integration/workflows/default.yaml")
    assert [r.path for r in wf.task_roles()] == ["default.readout", "default.stfb", "default.qc"]
    assert all(c.role_path.startswith("default.kafka.") for c in wf.calls)


# ------------------------------------------------------------------------------ roles


def tree() -> RoleTree:
    return RoleTree(Workflow.from_dict(yaml.safe_load(TEMPLATE)).role_tree)


def test_initial_values_publish_nothing_and_changes_only() -> None:
    roles = tree()
    assert roles.value("rd") == ("UNDEFINED", "UNKNOWN")
    assert roles.update({"rd.readout": (None, None)}) == []
    changes = roles.update({"rd.readout": ("ACTIVE", "STANDBY"), "rd.qc": ("ACTIVE", "STANDBY"),
                            "rd.dcs.sor": ("ACTIVE", None), "rd.dcs.eor": ("ACTIVE", None)})
    assert changes == [
        RoleChange("readout", "rd.readout", status="ACTIVE"),
        RoleChange("readout", "rd.readout", state="STANDBY"),
        RoleChange("qc", "rd.qc", status="ACTIVE"), RoleChange("qc", "rd.qc", state="STANDBY"),
        RoleChange("sor", "rd.dcs.sor", status="ACTIVE"),
        RoleChange("eor", "rd.dcs.eor", status="ACTIVE"),
        RoleChange("dcs", "rd.dcs", status="ACTIVE"),  # call roles only: no state
        RoleChange("rd", "rd", status="ACTIVE"), RoleChange("rd", "rd", state="STANDBY"),
    ]
    assert roles.update({"rd.readout": ("ACTIVE", "STANDBY")}) == []


def test_aggregation_rules() -> None:
    roles = tree()
    roles.update({"rd.readout": ("ACTIVE", "RUNNING"), "rd.qc": ("ACTIVE", "RUNNING"),
                  "rd.dcs.sor": ("ACTIVE", None), "rd.dcs.eor": ("ACTIVE", None)})
    # a non-critical child does not move its parent
    assert roles.update({"rd.qc": (None, "ERROR")}) == [RoleChange("qc", "rd.qc", state="ERROR")]
    assert roles.value("rd") == ("ACTIVE", "RUNNING")
    # a critical one does; ACTIVE with INACTIVE is PARTIAL
    assert roles.update({"rd.readout": (None, "ERROR")})[-1] == RoleChange("rd", "rd",
                                                                           state="ERROR")
    roles.update({"rd.dcs.sor": ("INACTIVE", None)})
    assert roles.value("rd.dcs")[0] == "INACTIVE"  # eor is not critical: sor alone decides
    assert roles.value("rd")[0] == "PARTIAL"


# ------------------------------------------------------------------------------ tasks


def test_local_tasks_follow_the_reference_life_cycle() -> None:
    tasks: TaskScheduler = LocalTasks("here")
    requests = [TaskRequest("rd.readout", "rd", "c/tasks/readout@master"),
                TaskRequest("rd.qc", "rd", "c/tasks/qc@master", host="qc1", critical=False)]
    launched = tasks.deploy("E", requests)
    assert [(t.state, t.status, t.hostname) for t in launched] == [
        ("LAUNCHED", "INACTIVE", "here"), ("LAUNCHED", "INACTIVE", "qc1"),
        ("STANDBY", "ACTIVE", "here"), ("STANDBY", "ACTIVE", "qc1")]
    assert launched[0].name == f"c/tasks/readout@master#{launched[0].task_id}"
    assert launched[0].task_id != launched[1].task_id
    for transition, state in (("CONFIGURE", "CONFIGURED"), ("START_ACTIVITY", "RUNNING")):
        assert {t.state for t in tasks.transition("E", transition)} == {state}
    assert tasks.transition("E", "EXIT") == []  # nothing changes: no event
    [failed] = tasks.fail("E", "rd.qc")
    assert (failed.state, failed.critical) == ("ERROR", False)
    stopped = tasks.transition("E", "GO_ERROR")  # RUNNING tasks stop, the failed one stays
    assert [(t.role_path, t.state) for t in stopped] == [("rd.readout", "CONFIGURED")]
    assert {t.state for t in tasks.transition("E", "RECOVER")} == {"STANDBY"}
    released = tasks.release("E")
    assert {(t.state, t.status) for t in released} == {("DONE", "INACTIVE")}
    with pytest.raises(KeyError, match=r"no task for role 'rd\.qc'"):
        tasks.fail("E", "rd.qc")
