"""Scenario files: the example parses; every validation error names file, environment, index."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from aliecs_integration.engine.workflow import TemplateRef
from aliecs_integration.records import OpStatus
from aliecs_integration.scenario.model import (
    Destroy,
    FailTask,
    ScenarioError,
    ServiceOperation,
    Sleep,
    Transition,
    load_scenario,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "scenario.yaml"


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value)
    return str(info.value)


def test_example_has_what_the_demo_promises() -> None:
    scenario = load_scenario(EXAMPLE)
    assert len(scenario.environments) >= 2
    kinds = [type(s.action) for e in scenario.environments for s in e.steps]
    names = [s.action.name for e in scenario.environments for s in e.steps
             if isinstance(s.action, Transition)]
    for transition in ("START_ACTIVITY", "STOP_ACTIVITY", "GO_ERROR", "RECOVER"):
        assert transition in names
    assert ServiceOperation in kinds and Sleep in kinds and Destroy in kinds
    enabled = {e.variables.get("kafka_enabled") for e in scenario.environments}
    assert {"true", "false"} <= enabled
    assert FailTask in kinds
    physics = scenario.environments[0]
    assert isinstance(physics.workflow, TemplateRef)  # loaded at CREATE
    workflow = physics.workflow.load()
    assert any(c.func == "nosuch.Call()" for c in workflow.calls)
    assert any(c.func == "kafka.PublishEnterStateUpdate()" for c in workflow.calls)
    roles = {c.role_path for c in workflow.calls}
    assert {"readout-dataflow.dcs.sor", "readout-dataflow.trg.start",
            "readout-dataflow.odc.start"} <= roles


def test_forms_of_actions(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, """
        environments:
          - id: a
            detectors: [ITS]
            variables: {kafka_enabled: true, count: 3}
            actions:
              - DEPLOY
              - {transition: CONFIGURE}
              - {transition: CONFIGURE, expect: error}
              - sleep: 0
              - service: DCS
                operation: dcs.StartOfRun()
                steps: [{step: one, status: ONGOING}]
                status: DONE_ERROR
                error: broken
                payload: {x: [1, 2]}
              - destroy
    """))
    plan = scenario.environments[0]
    assert plan.variables == {"kafka_enabled": "true", "count": "3"}
    assert plan.workflow is None  # the manager's default
    steps = plan.steps
    assert steps[0].action == Transition("DEPLOY") and not steps[0].expect_error
    assert steps[2].expect_error
    assert steps[3].action == Sleep(0.0)
    op = steps[4].action
    assert isinstance(op, ServiceOperation)
    assert (op.service, op.status, op.error, op.payload) == (
        "dcs", OpStatus.DONE_ERROR, "broken", '{"x":[1,2]}')
    assert op.steps[0].status is OpStatus.ONGOING
    assert steps[5].action == Destroy()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("actions: [DEPLOY, START]", "environments[0] ('a'): actions[1]: unknown transition"),
        ("actions: [DEPLOY, START_ACTIVITY]",
         "actions[1]: START_ACTIVITY is not allowed from DEPLOYED"),
        ("actions: [destroy, DEPLOY]", "actions[1]: nothing can follow destroy"),
        ("actions: [{sleep: -1}]", "actions[0]: key 'sleep': expected seconds from 0 to 86400"),
        ("actions: [{transition: DEPLOY, expect: maybe}]", "actions[0]: key 'expect'"),
        ("actions: [{service: dcs, operation: x, status: DONE_ERROR}]",
         "actions[0]: status DONE_ERROR needs an 'error' text"),
        ("actions: [{service: dcs, operation: x, status: FINE}]", "actions[0]: status: expected"),
        ("actions: [{service: dcs, operation: x, expect: error}]", "actions[0]: 'expect'"),
        ("actions: [{jump: 3}]", "actions[0]: expected one of the keys"),
        ("actions: []", "key 'actions': expected a non-empty list"),
        ("detectors: ITS\n    actions: [DEPLOY]", "key 'detectors'"),
        ("colour: red\n    actions: [DEPLOY]", "unknown key(s) colour"),
        ("calls: [{func: nope, trigger: enter_RUNNING}]\n    actions: [DEPLOY]",
         "calls[0].func"),
    ],
)
def test_validation_errors_name_file_environment_and_action(
    tmp_path: Path, body: str, expected: str
) -> None:
    text = f"environments:\n  - id: a\n    {body}\n"
    assert expected in error_of(tmp_path, text)


def test_duplicate_ids_and_empty_list(tmp_path: Path) -> None:
    assert "used twice: a" in error_of(tmp_path, """
        environments:
          - {id: a, actions: [DEPLOY]}
          - {id: a, actions: [DEPLOY]}
    """)
    assert "'environments' is empty" in error_of(tmp_path, "environments: []\n")
    assert "expected a mapping with a list under 'environments'" in error_of(tmp_path, "- a\n")


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, "environments:\n  - id: a\n    actions: [DEPLOY\n")
    assert "malformed YAML at line" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nope\.yaml: file not found"):
        load_scenario(tmp_path / "nope.yaml")


def test_scenario_errors_are_bad_input() -> None:
    assert ScenarioError.exit_code == 2


def test_service_payloads_are_json_with_sorted_keys(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, """
        environments:
          - id: a
            actions:
              - {service: dcs, operation: dcs.X(), payload: {b: 1, a: [2]}}
              - {service: dcs, operation: dcs.Y()}
    """))
    first, second = (s.action for s in scenario.environments[0].steps)
    assert isinstance(first, ServiceOperation) and isinstance(second, ServiceOperation)
    assert (first.payload, second.payload) == ('{"a":[2],"b":1}', "{}")
