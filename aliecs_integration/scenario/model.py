"""Scenario files: environments and what to do with them, and a runner driving a manager.

A scenario is YAML (see ``examples/scenario.yaml``)::

    environments:
      - id: physics                 # a label for progress lines; the manager assigns the real id
        detectors: [ITS, TPC]
        run_type: PHYSICS
        user: alice                 # who asks for the operations (lastRequestUser)
        variables: {kafka_enabled: true}
        workflow: default           # or a template YAML path, relative to the scenario file
                                    # (loaded at CREATE: a broken one fails that CREATE)
        calls:                      # extra workflow calls (workflow.py's flat call form)
          - {func: nosuch.Call(), trigger: after_CONFIGURE}
        actions:
          - DEPLOY                  # a transition: DEPLOY, CONFIGURE, START_ACTIVITY, ...
          - sleep: 0.5              # seconds
          - service: dcs            # an integrated-service operation
            operation: dcs.StartOfRun()
            steps: [{step: PFR, status: DONE_OK}]
            status: DONE_OK         # final status (DONE_ERROR needs `error`)
            payload: {runNumber: 1} # a mapping (sent as JSON) or a string
          - {transition: START_ACTIVITY, expect: error}   # expected to be refused or cancelled
          - fail_task: default.readout   # the task of that task role goes to ERROR
          - destroy

Environments run in parallel, one thread each, actions of one environment in order
(:mod:`aliecs_integration.scenario.runner`). Parsing raises :class:`ScenarioError` naming the
file, the environment and the action index.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from aliecs_integration import names, safe_yaml
from aliecs_integration.engine import fsm
from aliecs_integration.engine.workflow import (
    TemplateRef,
    Workflow,
    WorkflowError,
    default_workflow,
    variable_string,
)
from aliecs_integration.errors import AliecsError
from aliecs_integration.records import OpStatus

DESTROY = "destroy"
MAX_SLEEP_S = 86_400.0
"""The longest ``sleep`` action accepted (a day)."""
_ENV_KEYS = {"id", "detectors", "run_type", "variables", "workflow", "calls", "actions", "user"}
_EXPECT = {"ok": False, "error": True}


class ScenarioError(AliecsError):
    """A scenario file is unreadable, malformed or invalid (exit code 2 on the command line)."""

    exit_code = 2


@attrs.frozen
class Transition:
    name: str

    def describe(self) -> str:
        return self.name


@attrs.frozen
class Sleep:
    seconds: float

    def describe(self) -> str:
        return f"sleep {self.seconds:g}s"


@attrs.frozen
class ServiceStep:
    """A sub-step of an integrated-service operation and its status."""

    step: str
    status: OpStatus


@attrs.frozen
class ServiceOperation:
    """Reported as STARTED, then ONGOING once per step, then ``status`` (with ``error``)."""

    service: str
    operation: str
    steps: tuple[ServiceStep, ...] = ()
    status: OpStatus = OpStatus.DONE_OK
    error: str = ""
    payload: str = ""

    def describe(self) -> str:
        return f"{self.service}: {self.operation}"


@attrs.frozen
class Destroy:
    def describe(self) -> str:
        return "DESTROY"


@attrs.frozen
class FailTask:
    """Make the task of a task role fail (state ERROR)."""

    role_path: str

    def describe(self) -> str:
        return f"fail task {self.role_path}"


Action = Transition | Sleep | ServiceOperation | Destroy | FailTask


@attrs.frozen
class Step:
    """One action of an environment; ``expect_error``: the action is meant to fail."""

    index: int
    action: Action
    expect_error: bool = False


@attrs.frozen
class EnvironmentPlan:
    label: str
    workflow: Workflow | TemplateRef | None
    detectors: tuple[str, ...] = ()
    run_type: str = ""
    variables: Mapping[str, str] = attrs.field(factory=dict)
    steps: tuple[Step, ...] = ()
    user: str = ""
    """Who asks for the environment's operations (``lastRequestUser``); "" = nobody known."""


@attrs.frozen
class Scenario:
    path: str
    environments: tuple[EnvironmentPlan, ...]


# --------------------------------------------------------------------------- parsing


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file. Raises :class:`ScenarioError` naming the file, the
    environment (label and position) and the action index of the first problem."""
    try:
        data = safe_yaml.load_file(path)
    except safe_yaml.YamlInputError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    return parse_scenario(data, source=str(path), base_dir=path.parent)


def parse_scenario(data: Any, *, source: str, base_dir: Path) -> Scenario:
    """Validate a parsed scenario document (see the module docstring)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("environments"), list):
        raise ScenarioError(f"{source}: expected a mapping with a list under 'environments'")
    unknown = sorted(str(k) for k in data if k not in ("environments", "description"))
    if unknown:
        raise ScenarioError(f"{source}: unknown key(s) {', '.join(unknown)}")
    if not data["environments"]:
        raise ScenarioError(f"{source}: 'environments' is empty")
    plans = [_environment(item, f"{source}: environments[{i}]", base_dir)
             for i, item in enumerate(data["environments"])]
    labels = [p.label for p in plans]
    doubles = sorted({label for label in labels if labels.count(label) > 1})
    if doubles:
        raise ScenarioError(f"{source}: environment id(s) used twice: {', '.join(doubles)}")
    return Scenario(source, tuple(plans))


def _environment(item: Any, where: str, base_dir: Path) -> EnvironmentPlan:
    if not isinstance(item, Mapping):
        raise ScenarioError(f"{where}: expected a mapping, got {item!r}")
    label = item.get("id")
    if not isinstance(label, str) or not label.strip():
        raise ScenarioError(f"{where}: key 'id': expected a non-empty label")
    where = f"{where} ('{label}')"
    unknown = sorted(str(k) for k in item if k not in _ENV_KEYS)
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                            f"allowed: {', '.join(sorted(_ENV_KEYS))}")
    detectors = item.get("detectors", [])
    if not isinstance(detectors, list) or not all(isinstance(d, str) for d in detectors):
        raise ScenarioError(f"{where}: key 'detectors': expected a list of detector names")
    run_type = item.get("run_type", "")
    if not isinstance(run_type, str):
        raise ScenarioError(f"{where}: key 'run_type': expected a string")
    raw_vars = item.get("variables") or {}
    if not isinstance(raw_vars, Mapping):
        raise ScenarioError(f"{where}: key 'variables': expected a mapping")
    try:
        variables = {str(k): variable_string(v, where=f"{where}: variables.{k}")
                     for k, v in raw_vars.items()}
        workflow = _workflow(item, where, base_dir)
    except WorkflowError as exc:
        raise ScenarioError(str(exc)) from None
    raw_actions = item.get("actions")
    if not isinstance(raw_actions, list) or not raw_actions:
        raise ScenarioError(f"{where}: key 'actions': expected a non-empty list")
    steps = tuple(_step(a, i, f"{where}: actions[{i}]") for i, a in enumerate(raw_actions))
    _check_sequence(steps, where)
    user = item.get("user", "")
    if not isinstance(user, str):
        raise ScenarioError(f"{where}: key 'user': expected a user name")
    return EnvironmentPlan(label.strip(), workflow, tuple(detectors), run_type, variables, steps,
                           user.strip())


def _workflow(
    item: Mapping[str, Any], where: str, base_dir: Path
) -> Workflow | TemplateRef | None:
    """None for the manager's default; a template file is referenced (loaded at CREATE, where
    an invalid template fails that environment's CREATE), and read once here through the one
    YAML reader so that a missing, unreadable, binary or malformed file is bad input of the
    scenario, named before anything starts."""
    name = item.get("workflow", "default")
    if not isinstance(name, str) or not name:
        raise ScenarioError(f"{where}: key 'workflow': expected 'default' or a YAML file path")
    raw_calls = item.get("calls") or []
    if not isinstance(raw_calls, list):
        raise ScenarioError(f"{where}: key 'calls': expected a list of workflow calls")
    extra = Workflow.from_dict({"name": "calls", "calls": raw_calls}, source=where).calls
    if name != "default":
        path = base_dir / name
        try:
            safe_yaml.load_file(path)
        except safe_yaml.YamlInputError as exc:
            raise ScenarioError(f"{where}: key 'workflow': {path}: {exc}") from None
        return TemplateRef(path, extra)
    return default_workflow().with_calls(extra) if extra else None


def _status(value: Any, where: str) -> OpStatus:
    names = [s.name for s in OpStatus if s is not OpStatus.NULL]
    if not isinstance(value, str) or value not in names:
        raise ScenarioError(f"{where}: expected one of {', '.join(names)}, got {value!r}")
    return OpStatus[value]


def _payload(value: Any, where: str) -> str:
    """JSON with sorted keys (``{}`` when none is given); a string is sent as written."""
    if value is None:
        return "{}"
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{where}: payload is not JSON-serialisable: {exc}") from None


def _service(data: Mapping[str, Any], where: str) -> ServiceOperation:
    allowed = {"service", "operation", "steps", "status", "error", "payload"}
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(unknown)} in a service "
                            f"operation; allowed: {', '.join(sorted(allowed))}")
    service, operation = data.get("service"), data.get("operation")
    try:
        service = names.service_name(service)
    except names.InvalidName as exc:
        raise ScenarioError(f"{where}: key 'service': {exc}") from None
    if not isinstance(operation, str) or not operation:
        raise ScenarioError(f"{where}: key 'operation': expected an operation name "
                            "such as dcs.StartOfRun()")
    raw_steps = data.get("steps") or []
    if not isinstance(raw_steps, list):
        raise ScenarioError(f"{where}: key 'steps': expected a list of {{step, status}}")
    steps = []
    for i, raw in enumerate(raw_steps):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("step"), str):
            raise ScenarioError(f"{where}: steps[{i}]: expected {{step: NAME, status: STATUS}}")
        steps.append(ServiceStep(raw["step"], _status(raw.get("status", "DONE_OK"),
                                                      f"{where}: steps[{i}].status")))
    status = _status(data.get("status", "DONE_OK"), f"{where}: status")
    error = data.get("error", "")
    if not isinstance(error, str):
        raise ScenarioError(f"{where}: key 'error': expected a string")
    if status in (OpStatus.DONE_ERROR, OpStatus.DONE_TIMEOUT) and not error:
        raise ScenarioError(f"{where}: status {status.name} needs an 'error' text")
    return ServiceOperation(service, operation, tuple(steps), status, error,
                            _payload(data.get("payload"), f"{where}: payload"))


def _transition(name: Any, where: str) -> Transition:
    if not isinstance(name, str) or name not in fsm.TRANSITIONS:
        raise ScenarioError(f"{where}: unknown transition {name!r}; expected one of "
                            f"{', '.join(fsm.TRANSITIONS)}, 'sleep', 'service' or 'destroy'")
    return Transition(name)


def _step(raw: Any, index: int, where: str) -> Step:
    if isinstance(raw, str):
        return Step(index, Destroy() if raw == DESTROY else _transition(raw, where))
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: expected a transition name or a mapping, got {raw!r}")
    data = dict(raw)
    expect = data.pop("expect", "ok")
    if expect not in _EXPECT:
        raise ScenarioError(f"{where}: key 'expect': expected 'ok' or 'error', got {expect!r}")
    action: Action
    if "service" in data:
        if expect != "ok":
            raise ScenarioError(f"{where}: 'expect' does not apply to service operations")
        action = _service(data, where)
    elif set(data) == {"transition"}:
        action = _transition(data["transition"], where)
    elif set(data) == {"sleep"}:
        seconds = data["sleep"]
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds <= MAX_SLEEP_S  # also refuses nan and inf
        ):
            raise ScenarioError(f"{where}: key 'sleep': expected seconds from 0 to "
                                f"{MAX_SLEEP_S:g}, got {seconds!r}")
        action = Sleep(float(seconds))
    elif set(data) == {"destroy"} or set(data) == {DESTROY}:
        action = Destroy()
    elif set(data) == {"fail_task"}:
        path = data["fail_task"]
        if not isinstance(path, str) or not path:
            raise ScenarioError(f"{where}: fail_task: expected a task role path, got {path!r}")
        action = FailTask(path)
    else:
        raise ScenarioError(f"{where}: expected one of the keys transition, sleep, service, "
                            "fail_task or destroy (plus optional expect), got "
                            f"{', '.join(map(str, data))}")
    return Step(index, action, _EXPECT[expect])


def _check_sequence(steps: Sequence[Step], where: str) -> None:
    """Walk the state machine: each expected-ok transition must be allowed where it stands."""
    state: str | None = fsm.State.STANDBY  # None: unknown (after a task failed)
    destroyed = False
    for step in steps:
        at = f"{where}: actions[{step.index}]"
        if destroyed:
            raise ScenarioError(f"{at}: nothing can follow destroy")
        action = step.action
        if isinstance(action, Destroy):
            if state == fsm.State.DONE and not step.expect_error:
                raise ScenarioError(f"{at}: destroy is refused from DONE; mark it `expect: "
                                    "error` if that is the point")
            destroyed = not step.expect_error
        elif isinstance(action, FailTask):
            state = None  # ERROR if the task is critical: the template decides, at CREATE
        elif isinstance(action, Transition) and not step.expect_error and state is not None:
            try:
                state = fsm.next_state(where, action.name, state)
            except AliecsError as exc:
                allowed = ", ".join(fsm.allowed_transitions(state)) or "none"
                raise ScenarioError(
                    f"{at}: {action.name} is not allowed from {state} (allowed: {allowed}); "
                    "mark it `expect: error` if that is the point"
                ) from exc
