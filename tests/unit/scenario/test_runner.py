"""ScenarioRunner: parallel environments, progress, expected and unexpected failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aliecs_integration.engine.manager import EnvironmentManager
from aliecs_integration.engine.run_numbers import RunNumberStore
from aliecs_integration.errors import TransitionError
from aliecs_integration.records import CallFunction, OpStatus, RunEvent
from aliecs_integration.scenario.model import Scenario, ScenarioError, parse_scenario
from aliecs_integration.scenario.runner import CREATE_INDEX, Progress, ScenarioRunner


def scenario(text_data: dict[str, Any], tmp_path: Path) -> Scenario:
    return parse_scenario(text_data, source="test.yaml", base_dir=tmp_path)


class StubHost:
    """The two methods the manager uses; records run events, exports no function."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: list[RunEvent] = []
        self.service_events: list[Any] = []

    def fire(self, hook: Callable[..., None], event: object) -> list[object]:
        hook_name = hook.__name__
        with self.lock:
            if isinstance(event, RunEvent):
                self.runs.append(event)
            if hook_name == "on_integrated_service_event":
                self.service_events.append(event)
        return []

    def call_function(self, qualified_name: str) -> CallFunction | None:
        return None


def test_real_manager_full_lifecycle_in_parallel(tmp_path: Path) -> None:
    host = StubHost()
    manager = EnvironmentManager(host, settings_runtime_vars={},
                                 run_numbers=RunNumberStore(tmp_path / "rn"))
    plan = scenario({"environments": [
        {"id": "a", "detectors": ["ITS", "TPC"], "calls": [
            {"func": "nosuch.Call()", "trigger": "after_CONFIGURE"}],
         "actions": ["DEPLOY", "CONFIGURE", "START_ACTIVITY",
                     {"service": "dcs", "operation": "dcs.SOR()",
                      "steps": [{"step": "s1", "status": "DONE_OK"}], "payload": {"k": 1}},
                     "STOP_ACTIVITY", "GO_ERROR", "RECOVER", "destroy"]},
        {"id": "b", "detectors": ["ZDC"],
         "actions": ["DEPLOY", {"transition": "START_ACTIVITY", "expect": "error"}, "CONFIGURE",
                     "START_ACTIVITY", "destroy"]},
    ]}, tmp_path)
    seen: list[Progress] = []
    result = ScenarioRunner(manager, on_progress=seen.append).run(plan)
    manager.close()

    assert result.failures == []
    assert list(result.progress) == seen
    assert set(result.environment_ids) == {"a", "b"}
    a = [p for p in seen if p.label == "a"]
    assert [p.action for p in a] == ["CREATE", "DEPLOY", "CONFIGURE", "START_ACTIVITY",
                                     "dcs: dcs.SOR()", "STOP_ACTIVITY", "GO_ERROR", "RECOVER",
                                     "DESTROY"]
    assert a[0].index == CREATE_INDEX and a[1].index == 0
    assert [p.state for p in a[1:4]] == ["DEPLOYED", "CONFIGURED", "RUNNING"]
    configure = a[2]
    assert any("nosuch.Call()" in note and "DONE_ERROR" in note for note in configure.notes)
    start, stop = a[3], a[5]
    assert start.run_number is not None and stop.ended_run == start.run_number
    assert a[-1].state == "DESTROYED"
    b = [p for p in seen if p.label == "b"]
    refused = b[2]
    assert not refused.ok and refused.as_expected and "not allowed" in refused.error
    b_run = b[4].run_number
    assert b_run is not None and b_run != start.run_number
    assert b[-1].ended_run == b_run  # destroyed while running: the run was torn down
    assert sorted(result.run_numbers()) == sorted({start.run_number, b_run})
    assert {(r.transition, r.status) for r in host.runs} >= {
        ("START_ACTIVITY", OpStatus.STARTED), ("START_ACTIVITY", OpStatus.DONE_OK),
        ("STOP_ACTIVITY", OpStatus.DONE_OK), ("TEARDOWN", OpStatus.STARTED)}
    statuses = [(e.operation_status, e.operation_step, e.operation_step_status)
                 for e in host.service_events]
    # a step and its status on every event, also the first and the last
    assert statuses == [(OpStatus.STARTED, "s1", OpStatus.STARTED),
                        (OpStatus.ONGOING, "s1", OpStatus.DONE_OK),
                        (OpStatus.DONE_OK, "s1", OpStatus.DONE_OK)]
    assert {e.payload for e in host.service_events} == {'{"k":1}'}


class FakeManager:
    """Creates ids env-1, env-2, ...; transition names in ``fail`` raise TransitionError."""

    def __init__(self, fail: set[str] = frozenset(), barrier: threading.Barrier | None = None):
        self.fail, self.barrier = fail, barrier
        self.lock = threading.Lock()
        self.calls: list[tuple[str, ...]] = []
        self.count = 0
        self.states: dict[str, str] = {}

    def snap(self, env_id: str) -> Any:
        from aliecs_integration.records import EnvironmentSnapshot

        return EnvironmentSnapshot(id=env_id, state=self.states[env_id])

    def create(self, workflow: Any = None, *, detectors: Any = (), run_type: str = "",
               variables: Any = None, user: Any = None) -> Any:
        with self.lock:
            self.count += 1
            env_id = f"env-{self.count}"
            self.states[env_id] = "STANDBY"
            self.calls.append(("create", env_id))
        if self.barrier is not None:
            self.barrier.wait(timeout=5)  # both environments exist at the same time
        return self.snap(env_id)

    def transition(self, env_id: str, name: str, *, user: Any = None) -> Any:
        with self.lock:
            self.calls.append(("transition", env_id, name))
        if name in self.fail:
            raise TransitionError(f"environment {env_id}: {name} cancelled: boom")
        self.states[env_id] = {"DEPLOY": "DEPLOYED", "CONFIGURE": "CONFIGURED"}.get(name, "X")
        return self.snap(env_id)

    def destroy(self, env_id: str, *, user: Any = None, force: bool = False) -> Any:
        with self.lock:
            self.calls.append(("destroy", env_id, str(force)))
        return self.snap(env_id)

    def report_integrated_service_event(self, env_id: str, service: str, operation_name: str,
                                        status: OpStatus, **kwargs: Any) -> None:
        raise ValueError("service unreachable")

    def last_errors(self, env_id: str) -> tuple[str, ...]:
        return ()


def test_environments_run_in_parallel(tmp_path: Path) -> None:
    manager = FakeManager(barrier=threading.Barrier(2))
    plan = scenario({"environments": [
        {"id": "a", "actions": ["DEPLOY"]}, {"id": "b", "actions": ["DEPLOY"]}]}, tmp_path)
    started = time.monotonic()
    result = ScenarioRunner(manager).run(plan)
    assert time.monotonic() - started < 5  # the barrier would time out if run one by one
    assert result.failures == []


def test_unexpected_failure_stops_the_environment_and_cleans_up(tmp_path: Path) -> None:
    manager = FakeManager(fail={"CONFIGURE"})
    plan = scenario({"environments": [
        {"id": "a", "actions": ["DEPLOY", "CONFIGURE", "RESET", "destroy"]}]}, tmp_path)
    result = ScenarioRunner(manager).run(plan)
    assert [p.action for p in result.failures] == ["CONFIGURE"]
    assert "cancelled: boom" in result.failures[0].error
    assert ("transition", "env-1", "RESET") not in manager.calls
    assert manager.calls[-1] == ("destroy", "env-1", "True")
    assert result.progress[-1].action == "DESTROY (cleanup)"


def test_destroy_from_done_must_be_expected_to_fail(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"actions\[2\]: destroy is refused from DONE"):
        scenario({"environments": [{"id": "a", "actions": ["DEPLOY", "EXIT", "destroy"]}]},
                 tmp_path)
    plan = scenario({"environments": [
        {"id": "a", "actions": ["DEPLOY", "EXIT", {"destroy": None, "expect": "error"}]}]},
        tmp_path)
    assert len(plan.environments[0].steps) == 3


def test_fail_task_and_a_broken_template_with_the_real_manager(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("name: b\nroles:\n  - {name: x, roles: [], task: {}}\n")
    host = StubHost()
    manager = EnvironmentManager(host, settings_runtime_vars={},
                                 run_numbers=RunNumberStore(tmp_path / "rn"))
    plan = scenario({"environments": [
        {"id": "broken", "workflow": "broken.yaml", "actions": ["DEPLOY"]},
        {"id": "ok", "actions": ["DEPLOY", "CONFIGURE", {"fail_task": "default.qc"},
                                 "START_ACTIVITY", {"fail_task": "default.readout"},
                                 "RECOVER", "destroy"]},
    ]}, tmp_path)
    result = ScenarioRunner(manager).run(plan)
    manager.close()
    [broken] = result.failures
    assert (broken.label, broken.action) == ("broken", "CREATE")
    assert "cannot load workflow template" in broken.error and "role b.x" in broken.error
    ok = [p for p in result.progress if p.label == "ok"]
    assert [(p.action, p.state) for p in ok[3:6]] == [
        ("fail task default.qc", "CONFIGURED"), ("START_ACTIVITY", "RUNNING"),
        ("fail task default.readout", "ERROR")]
    assert ok[5].ended_run == ok[4].run_number  # GO_ERROR ended the run


def test_expected_failure_that_succeeds_is_a_failure(tmp_path: Path) -> None:
    manager = FakeManager()
    plan = scenario({"environments": [
        {"id": "a", "actions": [{"transition": "DEPLOY", "expect": "error"}]}]}, tmp_path)
    result = ScenarioRunner(manager).run(plan)
    assert len(result.failures) == 1 and result.failures[0].ok


def test_service_failure_and_crashing_callback_are_reported(tmp_path: Path) -> None:
    manager = FakeManager()
    plan = scenario({"environments": [{"id": "a", "actions": [
        {"service": "dcs", "operation": "dcs.X()"}]}]}, tmp_path)

    def explode(progress: Progress) -> None:
        raise RuntimeError("callback bug")

    result = ScenarioRunner(manager, on_progress=explode).run(plan)
    assert [p.error for p in result.failures] == ["service unreachable"]
