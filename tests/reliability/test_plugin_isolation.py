"""A plugin whose hooks raise, a call function that hangs past its timeout and a slow hook: each is
isolated and reported, the FSM stays consistent, and every event still reaches the other plugins
and the broker (counted per topic against what a recording plugin saw)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

import pytest

from aliecs_integration.engine.manager import EnvironmentManager
from aliecs_integration.engine.run_numbers import RunNumberStore
from aliecs_integration.engine.workflow import AGGREGATOR, TASK, CallSpec, RoleSpec, Workflow
from aliecs_integration.errors import TransitionError
from aliecs_integration.hookspecs import hookimpl
from aliecs_integration.host import PluginHost
from aliecs_integration.records import (
    CallContext,
    CallEvent,
    CallFunction,
    OpStatus,
    RoleEvent,
    RunEvent,
    TaskEvent,
    TransitionStepEvent,
)
from tests.kafka_helpers import core_kafka_settings
from tests.reliability import core_metrics, flush_core

pytestmark = pytest.mark.reliability

HANG_S, TIMEOUT_S, SLOW_HOOK_S = 3.0, 0.3, 0.5


class Raising:
    @hookimpl
    def on_env_transition_step(self, event: TransitionStepEvent) -> None:
        raise RuntimeError("raising plugin: step hook exploded")

    @hookimpl
    def on_call(self, event: CallEvent) -> None:
        raise ValueError("raising plugin: call hook exploded")


class Hanging:
    @hookimpl
    def register_call_functions(self) -> dict[str, CallFunction]:
        return {"Hang": self.hang}

    def hang(self, call: CallContext) -> str:
        time.sleep(HANG_S)
        return "too late"

    @hookimpl
    def on_role_event(self, event: RoleEvent) -> None:
        time.sleep(SLOW_HOOK_S)


class Recorder:
    def __init__(self) -> None:
        self.events: list[object] = []

    @hookimpl
    def on_env_transition_step(self, event: TransitionStepEvent) -> None:
        self.events.append(event)

    @hookimpl
    def on_call(self, event: CallEvent) -> None:
        self.events.append(event)

    @hookimpl
    def on_role_event(self, event: RoleEvent) -> None:
        self.events.append(event)

    @hookimpl
    def on_run_sor_eor(self, event: RunEvent) -> None:
        self.events.append(event)

    @hookimpl
    def on_task_event(self, event: TaskEvent) -> None:
        self.events.append(event)


WORKFLOW = Workflow(name="isolation", calls=(
    CallSpec("hanging.Hang()", "enter_CONFIGURED", timeout=TIMEOUT_S),
    CallSpec("hanging.Hang()", "before_START_ACTIVITY+60", timeout=TIMEOUT_S, critical=True),
), root=RoleSpec("isolation", "isolation", AGGREGATOR, children=(
    RoleSpec("task", "isolation.task", TASK, task_class="readout"),)))  # role events to slow


def test_raising_hanging_and_slow_plugins_are_isolated(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    host = PluginHost(core_kafka_settings(kafka_bootstrap, topic_prefix), extra_plugins={
        "raising": Raising(), "hanging": Hanging(), "recorder": recorder})
    host.start()
    assert {p.name for p in host.list_plugins() if p.loaded} == {
        "core-kafka", "raising", "hanging", "recorder"}
    manager = EnvironmentManager(host, settings_runtime_vars={}, default_workflow=WORKFLOW,
                                 run_numbers=RunNumberStore(tmp_path / "run_number"))
    try:
        with caplog.at_level(logging.WARNING):
            env = manager.create(detectors=("TPC",))
            manager.transition(env.id, "DEPLOY")
            started = time.monotonic()
            after = manager.transition(env.id, "CONFIGURE")
            configure_s = time.monotonic() - started
            assert after.state == "CONFIGURED"
            assert any("DONE_TIMEOUT" in e for e in manager.last_errors(env.id))
            with pytest.raises(TransitionError, match="cancelled at step before_START_ACTIVITY"):
                manager.transition(env.id, "START_ACTIVITY")
            assert manager.get(env.id).state == "CONFIGURED"
            assert manager.get(env.id).run_number is None
            assert manager.transition(env.id, "RESET").state == "DEPLOYED"
        report = flush_core(host, 60)
        metrics = core_metrics(host)
    finally:
        manager.close()
        host.stop(timeout_s=30)

    # the hanging call: abandoned at its timeout, reported DONE_TIMEOUT in its on_call event
    hang_ends = [e for e in recorder.events if isinstance(e, CallEvent)
                 and e.func == "hanging.Hang()" and e.status is not OpStatus.STARTED]
    assert [e.status for e in hang_ends] == [OpStatus.DONE_TIMEOUT, OpStatus.DONE_TIMEOUT]
    assert all(f"timed out after {TIMEOUT_S:g}s" in e.error for e in hang_ends)
    # the slow hook delays the transition (hooks run on the driving thread) but breaks nothing
    assert configure_s >= SLOW_HOOK_S + TIMEOUT_S
    # the cancelled START_ACTIVITY: its run event ends DONE_ERROR
    runs = [e for e in recorder.events if isinstance(e, RunEvent)]
    assert [(r.transition, r.status) for r in runs] == [
        ("START_ACTIVITY", OpStatus.STARTED), ("START_ACTIVITY", OpStatus.DONE_ERROR)]
    # the raising plugin: every failure logged with its name, counted, others unaffected
    steps = [e for e in recorder.events if isinstance(e, TransitionStepEvent)]
    calls = [e for e in recorder.events if isinstance(e, CallEvent)]
    assert host.failure_count["raising"] == len(steps) + len(calls)
    assert caplog.text.count("plugin 'raising' failed in on_env_transition_step") == len(steps)
    assert caplog.text.count("plugin 'raising' failed in on_call") == len(calls)
    assert "core-kafka" not in host.failure_count and "recorder" not in host.failure_count
    # end to end: every event the recorder saw was acknowledged by the broker
    kinds = Counter(type(e).__name__ for e in recorder.events)
    acked = {topic.rsplit(".", 1)[1]: m.sent for topic, m in metrics.topics.items()}
    assert acked == {"environment": kinds["TransitionStepEvent"], "call": kinds["CallEvent"],
                     "role": kinds["RoleEvent"], "run": kinds["RunEvent"],
                     "task": kinds["TaskEvent"], "core": 1}
    assert report.undelivered == report.failed == report.dropped == 0, report
