"""workflow: CallSpec parsing, enabled conditions, loading with clear errors, default workflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aliecs_integration.engine.workflow import (
    CallSpec,
    Condition,
    Workflow,
    WorkflowError,
    default_workflow,
    parse_timeout,
)


def test_call_spec_parses_func_and_trigger() -> None:
    spec = CallSpec("kafka.PublishStartActivityUpdate()", "before_START_ACTIVITY+50")
    assert (spec.qualified_name, spec.args, spec.step, spec.weight) == (
        "kafka.PublishStartActivityUpdate", "", "before_START_ACTIVITY", 50)
    spec = CallSpec("core-kafka.Do(a, b)", "enter_RUNNING-3", timeout=0.5, critical=True)
    assert (spec.qualified_name, spec.args, spec.weight) == ("core-kafka.Do", "a, b", -3)
    assert CallSpec("dcs.EndOfRun", "after_STOP_ACTIVITY").qualified_name == "dcs.EndOfRun"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"func": "PublishUpdate()", "trigger": "enter_RUNNING"}, "malformed call function"),
        ({"func": "kafka.()", "trigger": "enter_RUNNING"}, "malformed call function"),
        ({"func": "kafka.F()", "trigger": "enter_RUNNIN"}, "names no known step"),
        ({"func": "kafka.F()", "trigger": "enter_RUNNING", "timeout": 0}, "timeout must be"),
        ({"func": "kafka.F()", "trigger": "enter_RUNNING", "timeout": -1.0}, "timeout must be"),
        ({"func": "kafka.F()", "trigger": "enter_RUNNING", "enabled": "a b"}, "malformed enabled"),
        ({"func": "kafka.F()", "trigger": "enter_RUNNING", "enabled": "!a == b"},
         "malformed enabled"),
    ],
)
def test_call_spec_rejects_bad_input(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CallSpec(**kwargs)


@pytest.mark.parametrize(
    ("condition", "variables", "expected"),
    [
        ("", {}, True),
        ("kafka_enabled", {"kafka_enabled": "true"}, True),
        ("kafka_enabled", {"kafka_enabled": " TRUE "}, True),
        ("kafka_enabled", {"kafka_enabled": "false"}, False),
        ("kafka_enabled", {"kafka_enabled": "yes"}, False),
        ("kafka_enabled", {}, False),
        ("!kafka_enabled", {}, True),
        ("!kafka_enabled", {"kafka_enabled": "true"}, False),
        ("run_type == PHYSICS", {"run_type": "PHYSICS"}, True),
        ("run_type == 'PHYSICS'", {"run_type": "PHYSICS"}, True),
        ("run_type==PHYSICS", {"run_type": "TECHNICAL"}, False),
        ("run_type != PHYSICS", {"run_type": "TECHNICAL"}, True),
        ("run_type != PHYSICS", {}, True),
        ("x == ''", {}, True),
        ("dcs.enabled", {"dcs.enabled": "true"}, True),
    ],
)
def test_conditions(condition: str, variables: dict[str, str], expected: bool) -> None:
    assert Condition.parse(condition)(variables) is expected
    spec = CallSpec("a.B()", "enter_RUNNING", enabled=condition)
    assert spec.is_enabled(variables) is expected


def test_calls_at_orders_by_weight_keeping_declared_order_for_ties() -> None:
    calls = [
        CallSpec("p.A()", "enter_CONFIGURED+5"),
        CallSpec("p.B()", "enter_CONFIGURED-10"),
        CallSpec("p.C()", "enter_CONFIGURED"),
        CallSpec("p.D()", "enter_CONFIGURED-1"),
        CallSpec("p.E()", "enter_CONFIGURED+0"),
        CallSpec("p.F()", "enter_CONFIGURED-10"),
        CallSpec("p.G()", "before_CONFIGURE"),
    ]
    wf = Workflow("wf", calls=calls)
    negative, positive = wf.calls_at("enter_CONFIGURED")
    assert [c.func for c in negative] == ["p.B()", "p.F()", "p.D()"]
    assert [c.func for c in positive] == ["p.C()", "p.E()", "p.A()"]
    assert wf.calls_at("after_CONFIGURE") == ((), ())


WORKFLOW_YAML = """
name: readout
description: test workflow
defaults:
  kafka_enabled: true
  n_readers: 3
calls:
  - func: kafka.PublishEnterStateUpdate()
    trigger: enter_RUNNING
  - func: dcs.StartOfRun()
    trigger: before_START_ACTIVITY+100
    timeout: 500ms
    critical: true
    enabled: dcs_enabled
    return: dcs_sor
    role: readout/dcs
"""


def test_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW_YAML)
    wf = Workflow.from_yaml(path)
    assert (wf.name, wf.description, wf.path) == ("readout", "test workflow", str(path))
    assert dict(wf.defaults) == {"kafka_enabled": "true", "n_readers": "3"}
    assert wf.calls[1] == CallSpec(
        "dcs.StartOfRun()", "before_START_ACTIVITY+100", timeout=0.5, critical=True,
        enabled="dcs_enabled", return_var="dcs_sor", role_path="readout/dcs",
    )
    info = wf.template_info()
    assert (info.name, info.path) == ("readout", str(path))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "src: expected a mapping"),
        ({"calls": []}, "src: key 'name': expected a non-empty string"),
        ({"name": "w", "colls": []}, r"src: unknown key\(s\) colls; allowed: calls, defaults"),
        ({"name": "w", "calls": {}}, "src: key 'calls': expected a list"),
        ({"name": "w", "defaults": {"a": [1]}}, r"src: defaults.a: expected a string"),
        ({"name": "w", "calls": [{"func": "a.B()"}]}, r"src: calls\[0\].trigger: expected"),
        ({"name": "w", "calls": [{"func": "a.B()", "trigger": "enter_X"}]},
         r"src: calls\[0\].trigger: trigger 'enter_X' names no known step"),
        ({"name": "w", "calls": [{"trigger": "enter_RUNNING", "func": "AB"}]},
         r"src: calls\[0\].func: malformed call function 'AB'"),
        ({"name": "w", "calls": [{"func": "a.B()", "trigger": "DESTROY", "critical": "yes"}]},
         r"src: calls\[0\].critical: expected true or false"),
        ({"name": "w", "calls": [{"func": "a.B()", "trigger": "DESTROY", "timeout": "5 sec"}]},
         r"src: calls\[0\].timeout: malformed timeout '5 sec'"),
        ({"name": "w", "calls": [{"func": "a.B()", "trigger": "DESTROY", "enabled": "a b"}]},
         r"src: calls\[0\].enabled: malformed enabled condition"),
        ({"name": "w", "calls": [{"func": "a.B()", "trigger": "DESTROY", "critcal": True}]},
         r"src: calls\[0\]: unknown key\(s\) critcal"),
        ({"name": "w", "calls": ["a.B()"]}, r"src: calls\[0\]: expected a mapping"),
    ],
)
def test_from_dict_errors_name_where(data: Any, message: str) -> None:
    with pytest.raises(WorkflowError, match=message):
        Workflow.from_dict(data, source="src")


def test_from_yaml_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(WorkflowError, match=f"{bad}: malformed YAML"):
        Workflow.from_yaml(bad)
    with pytest.raises(WorkflowError, match=r"missing\.yaml: file not found"):
        Workflow.from_yaml(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(5, 5.0), (0.25, 0.25), ("500ms", 0.5), ("5s", 5.0), ("1.5m", 90.0), ("1h", 3600.0),
     ("2", 2.0)],
)
def test_parse_timeout(value: Any, seconds: float) -> None:
    assert parse_timeout(value) == seconds


@pytest.mark.parametrize("value", ["0s", "-1s", "5 sec", True, None, "s"])
def test_parse_timeout_rejects(value: Any) -> None:
    with pytest.raises(ValueError, match="timeout"):
        parse_timeout(value)


def test_default_workflow_wires_the_legacy_plugin_as_lifecycle_md_says() -> None:
    wf = default_workflow()
    wired = {(c.func, c.trigger) for c in wf.calls}
    enter = "kafka.PublishEnterStateUpdate()"
    leave = "kafka.PublishLeaveStateUpdate()"
    start = "kafka.PublishStartActivityUpdate()"
    expected = {(enter, f"enter_{s}") for s in
                ("STANDBY", "DEPLOYED", "CONFIGURED", "RUNNING", "ERROR", "DONE")}
    expected |= {(enter, "DESTROY")}
    expected |= {(leave, f"leave_{s}") for s in
                 ("STANDBY", "DEPLOYED", "CONFIGURED", "RUNNING", "ERROR")}
    expected |= {(start, "before_START_ACTIVITY+50"), (start, "after_START_ACTIVITY")}
    assert wired == expected
    assert len(wf.calls) == len(expected)
    for call in wf.calls:
        assert not call.critical
        assert call.is_enabled({"kafka_enabled": "true"})
        assert not call.is_enabled({"kafka_enabled": "false"})
        assert not call.is_enabled({})
