"""EnvironmentManager against a fake host that records every hook firing and call run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aliecs_integration.engine import fsm
from aliecs_integration.engine.manager import EnvironmentManager
from aliecs_integration.engine.run_numbers import RunNumberStore
from aliecs_integration.engine.workflow import CallSpec, Workflow
from aliecs_integration.errors import EnvironmentNotFound, TransitionError
from aliecs_integration.plugin import nonblocking
from aliecs_integration.records import (
    CallContext,
    CallEvent,
    CallFunction,
    OpStatus,
    RunEvent,
    TransitionStepEvent,
    User,
)

Entry = tuple[Any, ...]


class FakeHost:
    """Same two methods as PluginHost; records a readable trace of everything it sees."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, object]] = []
        self.trace: list[Entry] = []
        self.contexts: list[CallContext] = []
        self.functions: dict[str, CallFunction] = {}

    def fire(self, hook: Callable[..., None], event: object) -> list[object]:
        hook_name = hook.__name__
        with self.lock:
            self.events.append((hook_name, event))
            self.trace.append(describe(hook_name, event))
        return []

    def call_function(self, qualified_name: str) -> CallFunction | None:
        return self.functions.get(qualified_name)

    def export(self, name: str, body: Callable[[CallContext], str | None] | None = None) -> None:
        def fn(ctx: CallContext) -> str | None:
            with self.lock:
                self.trace.append(("ran", ctx.func, ctx.trigger))
                self.contexts.append(ctx)
            return body(ctx) if body else None

        self.functions[name] = fn

    def of(self, hook: str) -> list[Any]:
        with self.lock:
            return [e for h, e in self.events if h == hook]

    def clear(self) -> None:
        with self.lock:
            self.events.clear()
            self.trace.clear()
            self.contexts.clear()


def describe(hook: str, event: Any) -> Entry:
    if hook == "on_env_transition_step" and not event.step:
        return ("env", event.message, event.status.name)
    if hook == "on_env_transition_step":
        return ("step", event.step, "finished" if event.finished else "started", event.status.name)
    if hook == "on_task_event":
        return ("task", event.state, event.status)
    if hook == "on_call":
        return ("call", event.func, event.status.name)
    if hook in ("on_env_enter_state", "on_env_leave_state"):
        return (hook[7:12], event.state)
    if hook == "on_role_event":
        return ("role", event.state, event.status)
    if hook == "on_run_sor_eor":
        return ("run", event.transition, event.status.name, event.run_number)
    return (hook,)


PATHS = {
    "STANDBY": [], "DEPLOYED": ["DEPLOY"], "CONFIGURED": ["DEPLOY", "CONFIGURE"],
    "RUNNING": ["DEPLOY", "CONFIGURE", "START_ACTIVITY"], "ERROR": ["GO_ERROR"], "DONE": ["EXIT"],
}


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


@pytest.fixture
def store(tmp_path: Path) -> RunNumberStore:
    return RunNumberStore(tmp_path / "run_number")


@pytest.fixture
def make(host: FakeHost, store: RunNumberStore) -> Iterator[Callable[..., EnvironmentManager]]:
    made: list[EnvironmentManager] = []

    def factory(**kwargs: Any) -> EnvironmentManager:
        kwargs.setdefault("settings_runtime_vars", {})
        kwargs.setdefault("run_numbers", store)
        manager = EnvironmentManager(kwargs.pop("host", host), **kwargs)
        made.append(manager)
        return manager

    yield factory
    for manager in made:
        manager.close()


def drive(manager: EnvironmentManager, env_id: str, path: list[str]) -> None:
    for name in path:
        manager.transition(env_id, name)


def steps_only(trace: list[Entry]) -> list[Entry]:
    return [e for e in trace if e[0] not in ("run", "task", "role")]


STARTING = ("env", "transition starting", "STARTED")
COMPLETED = ("env", "transition completed successfully", "DONE_OK")


def pair(step: str, *inner: Entry, status: str = "ONGOING") -> list[Entry]:
    """A step pair with what happens inside it."""
    return [("step", step, "started", "ONGOING"), *inner, ("step", step, "finished", status)]


def call_entries(func: str, trigger: str, status: str = "DONE_OK") -> list[Entry]:
    return [("call", func, "STARTED"), ("ran", func, trigger), ("call", func, status)]


# ---------------------------------------------------------------- state machine


@pytest.mark.parametrize(
    ("transition", "source"),
    sorted((t, s) for t, (sources, _) in fsm.TRANSITIONS.items() for s in sources),
)
def test_every_allowed_transition_runs_the_five_steps(
    make: Callable[..., EnvironmentManager], host: FakeHost, transition: str, source: str
) -> None:
    manager = make()
    env = manager.create()
    drive(manager, env.id, PATHS[source])
    host.clear()
    target = fsm.TRANSITIONS[transition][1]
    snap = manager.transition(env.id, transition)
    assert snap.state == target == manager.get(env.id).state
    before, leave, tasks, enter, after = fsm.step_names(transition, source, target)
    assert steps_only(host.trace) == [
        STARTING, *pair(before), *pair(leave, ("leave", source)), *pair(tasks),
        *pair(enter, ("enter", target)), *pair(after), COMPLETED,
    ]
    steps = host.of("on_env_transition_step")
    assert {e.transition for e in steps} == {transition}
    # the tasks_ step's finished event already has the new state (the tasks are there)
    assert [e.environment.state for e in steps] == [source] * 6 + [target] * 6
    assert manager.last_errors(env.id) == ()


REFUSED = [
    (state, t) for state in PATHS for t in [*fsm.TRANSITIONS, "CREATE", "DESTROY", "NOPE"]
    if state not in fsm.TRANSITIONS.get(t, (frozenset(), ""))[0]
]


@pytest.mark.parametrize(("state", "transition"), REFUSED)
def test_every_refused_transition_changes_nothing_and_publishes_start_and_error(
    make: Callable[..., EnvironmentManager], host: FakeHost, store: RunNumberStore,
    state: str, transition: str,
) -> None:
    manager = make()
    env = manager.create()
    drive(manager, env.id, PATHS[state])
    before = manager.get(env.id)
    host.clear()
    last_run = store.last()
    with pytest.raises(TransitionError, match=f"environment {env.id}: .*current state {state}"):
        manager.transition(env.id, transition, user=User("mallory"))
    assert manager.get(env.id) == before
    assert host.trace == [STARTING, ("env", "transition error", "DONE_ERROR")]
    error = host.of("on_env_transition_step")[-1]
    assert error.error == f"event {transition} inappropriate in current state {state}"
    assert (error.transition, error.environment.state) == (transition, state)
    assert store.last() == last_run


# ---------------------------------------------------------------- steps, weights, failures


def test_step_and_weight_order(make: Callable[..., EnvironmentManager], host: FakeHost) -> None:
    calls = [
        CallSpec("p.A()", "enter_CONFIGURED+5"), CallSpec("p.B()", "enter_CONFIGURED-10"),
        CallSpec("p.C()", "enter_CONFIGURED"), CallSpec("p.D()", "enter_CONFIGURED-1"),
        CallSpec("p.E()", "enter_CONFIGURED"), CallSpec("p.L()", "leave_DEPLOYED-1"),
        CallSpec("p.M()", "leave_DEPLOYED"), CallSpec("p.F()", "before_CONFIGURE"),
        CallSpec("p.G()", "after_CONFIGURE-3"),
    ]
    for name in "ABCDEFGLM":
        host.export(f"p.{name}")
    manager = make()
    env = manager.create(Workflow("wf", calls=calls))
    manager.transition(env.id, "DEPLOY")
    host.clear()
    manager.transition(env.id, "CONFIGURE")
    assert host.trace == [
        STARTING,
        *pair("before_CONFIGURE", *call_entries("p.F()", "before_CONFIGURE")),
        *pair("leave_DEPLOYED", *call_entries("p.L()", "leave_DEPLOYED"),
              ("leave", "DEPLOYED"), *call_entries("p.M()", "leave_DEPLOYED")),
        *pair("tasks_CONFIGURE"),
        *pair("enter_CONFIGURED", *call_entries("p.B()", "enter_CONFIGURED"),
              *call_entries("p.D()", "enter_CONFIGURED"), ("enter", "CONFIGURED"),
              *call_entries("p.C()", "enter_CONFIGURED"),
              *call_entries("p.E()", "enter_CONFIGURED"),
              *call_entries("p.A()", "enter_CONFIGURED")),
        *pair("after_CONFIGURE", *call_entries("p.G()", "after_CONFIGURE")),
        COMPLETED,
    ]
    # the state changed at the end of tasks_CONFIGURE: every enter_ call sees the new one
    states = {ctx.func: ctx.environment.state for ctx in host.contexts}
    assert states["p.L()"] == "DEPLOYED"
    assert states["p.B()"] == states["p.C()"] == "CONFIGURED"


def _boom(ctx: CallContext) -> str:
    raise RuntimeError("boom")


@pytest.mark.parametrize("critical", [True, False])
@pytest.mark.parametrize(
    "step", ["before_CONFIGURE", "leave_DEPLOYED", "enter_CONFIGURED", "after_CONFIGURE"]
)
def test_failures_in_each_step_kind(
    make: Callable[..., EnvironmentManager], host: FakeHost, step: str, critical: bool
) -> None:
    host.export("p.Fail", _boom)
    host.export("p.Next")
    host.export("p.Last")
    calls = [
        CallSpec("p.Fail()", f"{step}-1", critical=critical),
        CallSpec("p.Next()", f"{step}+1"),
        CallSpec("p.Last()", "after_CONFIGURE+10"),
    ]
    manager = make()
    env = manager.create(Workflow("wf", calls=calls))
    manager.transition(env.id, "DEPLOY")
    host.clear()
    cancels = critical and step.startswith(("before_", "leave_"))
    kind = "critical call" if critical else "call"
    description = f"{kind} p.Fail() at {step}-1: DONE_ERROR: RuntimeError: boom"
    if cancels:
        with pytest.raises(TransitionError, match=f"cancelled at step {step}: .*boom.*"
                                                  "state stays DEPLOYED"):
            manager.transition(env.id, "CONFIGURE")
        assert manager.get(env.id).state == "DEPLOYED"
        ran = [e[1] for e in host.trace if e[0] == "ran"]
        assert ran == ["p.Fail()"]  # the rest of the step and later steps never ran
        assert ("enter", "CONFIGURED") not in host.trace
        assert host.trace[-2:] == [("step", step, "finished", "DONE_ERROR"),
                                   ("env", "transition error", "DONE_ERROR")]
        last = host.of("on_env_transition_step")[-1]
        assert last.error == "transition canceled with error: RuntimeError: boom"
        assert last.environment.state == "DEPLOYED"
    else:
        snap = manager.transition(env.id, "CONFIGURE")
        assert snap.state == "CONFIGURED"
        ran = [e[1] for e in host.trace if e[0] == "ran"]
        assert ran == ["p.Fail()", "p.Next()", "p.Last()"]
    finished = {e.step: e for e in host.of("on_env_transition_step") if e.finished and e.step}
    if critical:  # only a critical failure fails a step; its error is the call's error
        assert (finished[step].status, finished[step].error) == (
            OpStatus.DONE_ERROR, "RuntimeError: boom")
        if step == "enter_CONFIGURED":  # after_ carries the enter_ error too
            assert (finished["after_CONFIGURE"].status, finished["after_CONFIGURE"].error) == (
                OpStatus.DONE_ERROR, "RuntimeError: boom")
        if not cancels:  # the state is already CONFIGURED: a raw transition error
            last = host.of("on_env_transition_step")[-1]
            assert (last.message, last.error, last.environment.state) == (
                "transition error", "RuntimeError: boom", "CONFIGURED")
    else:
        assert all(e.status is OpStatus.ONGOING for e in finished.values())
        assert host.trace[-1] == COMPLETED
    assert manager.last_errors(env.id) == (description,)
    done = [e for e in host.of("on_call") if e.func == "p.Fail()"][-1]
    assert (done.status, done.error) == (OpStatus.DONE_ERROR, "RuntimeError: boom")


def test_timeout(make: Callable[..., EnvironmentManager], host: FakeHost) -> None:
    release = threading.Event()
    host.export("p.Hang", lambda ctx: str(release.wait(5)))
    calls = [CallSpec("p.Hang()", "before_DEPLOY", timeout=0.2),
             CallSpec("p.Hang()", "before_EXIT", timeout=0.2, critical=True)]
    manager = make()
    env = manager.create(Workflow("wf", calls=calls))
    try:
        start = time.monotonic()
        assert manager.transition(env.id, "DEPLOY").state == "DEPLOYED"
        assert time.monotonic() - start < 2.0
        done = host.of("on_call")[-1]
        assert done.status is OpStatus.DONE_TIMEOUT
        assert "timed out after 0.2s" in done.error
        assert done.traits.timeout == "0.2s"
        assert "DONE_TIMEOUT" in manager.last_errors(env.id)[0]
        with pytest.raises(TransitionError, match="DONE_TIMEOUT"):
            manager.transition(env.id, "EXIT")
        assert manager.get(env.id).state == "DEPLOYED"
    finally:
        release.set()


def test_enabled_conditions(make: Callable[..., EnvironmentManager], host: FakeHost) -> None:
    for name in ("On", "Off", "Not", "Eq", "Neq"):
        host.export(f"p.{name}")
    calls = [
        CallSpec("p.On()", "before_DEPLOY", enabled="kafka_enabled"),
        CallSpec("p.Off()", "before_DEPLOY", enabled="dcs_enabled"),
        CallSpec("p.Not()", "before_DEPLOY", enabled="!dcs_enabled"),
        CallSpec("p.Eq()", "before_DEPLOY", enabled="run_type == PHYSICS"),
        CallSpec("p.Neq()", "before_DEPLOY", enabled="run_type != PHYSICS"),
    ]
    manager = make(settings_runtime_vars={"kafka_enabled": "true", "dcs_enabled": "true"})
    env = manager.create(Workflow("wf", calls=calls), run_type="PHYSICS",
                         variables={"dcs_enabled": "false"})
    host.clear()
    manager.transition(env.id, "DEPLOY")
    assert [e[1] for e in host.trace if e[0] == "ran"] == ["p.On()", "p.Not()", "p.Eq()"]
    assert {e.func for e in host.of("on_call")} == {"p.On()", "p.Not()", "p.Eq()"}
    # the user's false beats the runtime default, and a runtime false disables kafka
    other = make(settings_runtime_vars={"kafka_enabled": "false"})
    env2 = other.create(Workflow("wf", calls=calls[:1]))
    host.clear()
    other.transition(env2.id, "DEPLOY")
    assert host.of("on_call") == []


def test_unknown_function_is_a_clear_call_error(
    make: Callable[..., EnvironmentManager], host: FakeHost
) -> None:
    calls = [CallSpec("kafka.PublishEnterStateUpdate()", "enter_DEPLOYED"),
             CallSpec("ghost.Do()", "before_CONFIGURE", critical=True)]
    manager = make()
    env = manager.create(Workflow("wf", calls=calls))
    snap = manager.transition(env.id, "DEPLOY")
    assert snap.state == "DEPLOYED"
    events: list[CallEvent] = host.of("on_call")
    assert [e.status for e in events] == [OpStatus.STARTED, OpStatus.DONE_ERROR]
    assert events[1].error == (
        "unknown function kafka.PublishEnterStateUpdate: no loaded plugin exports it")
    with pytest.raises(TransitionError, match=r"unknown function ghost\.Do"):
        manager.transition(env.id, "CONFIGURE")


def test_call_context_variables_and_return_value(
    make: Callable[..., EnvironmentManager], host: FakeHost
) -> None:
    host.export("p.Echo", lambda ctx: f"out:{ctx.args}")
    calls = [
        CallSpec("p.Echo(a, b)", "before_DEPLOY+7", timeout=2.5, critical=True,
                 return_var="echoed", role_path="wf/child"),
        CallSpec("p.Echo()", "after_DEPLOY"),
    ]
    manager = make(call_timeout_default_s=12)
    env = manager.create(Workflow("wf", calls=calls), detectors=["TPC"])
    manager.transition(env.id, "DEPLOY", user=User("alice"))
    first, second = host.contexts
    assert (first.func, first.trigger, first.args) == ("p.Echo(a, b)", "before_DEPLOY", "a, b")
    assert (first.traits.trigger, first.traits.await_, first.traits.timeout,
            first.traits.critical) == ("before_DEPLOY+7", "before_DEPLOY+7", "2.5s", True)
    v = first.environment.variables
    assert {k: v[k] for k in v if k.startswith("__call_")} == {
        "__call_func": "p.Echo(a, b)", "__call_trigger": "before_DEPLOY+7",
        "__call_timeout": "2.5s", "__call_await": "before_DEPLOY+7",
        "__call_critical": "true", "__call_rolepath": "wf/child",
    }
    assert v["environment_id"] == env.id and v["detectors"] == '["TPC"]'
    assert first.environment.last_request_user == User("alice")
    second_vars = second.environment.variables
    assert (second_vars["__call_timeout"], second_vars["__call_rolepath"]) == ("12s", "wf")
    assert second_vars["echoed"] == "out:a, b"  # the return variable of the first call
    assert "__call_func" not in manager.get(env.id).variables
    done = host.of("on_call")[1]
    assert (done.output, done.return_var, done.role_path) == ("out:a, b", "echoed", "wf/child")


# ---------------------------------------------------------------- runs


def run_events(host: FakeHost) -> list[RunEvent]:
    return host.of("on_run_sor_eor")


def ms(event: RunEvent) -> str:
    return str(event.timestamp_ns // 1_000_000)


def test_start_and_stop_of_run(
    make: Callable[..., EnvironmentManager], host: FakeHost, store: RunNumberStore
) -> None:
    for name in ("PublishEnterStateUpdate", "PublishLeaveStateUpdate",
                 "PublishStartActivityUpdate"):
        host.export(f"kafka.{name}")
    manager = make()
    env = manager.create(detectors=["ITS"], run_type="PHYSICS",
                         variables={"kafka_enabled": "true"}, user=User("bob"))
    drive(manager, env.id, ["DEPLOY", "CONFIGURE"])
    host.clear()
    running = manager.transition(env.id, "START_ACTIVITY")
    assert running.run_number == 1 and running.variables["run_number"] == "1"
    started, done = run_events(host)
    assert (started.transition, started.status, started.run_number, started.state) == (
        "START_ACTIVITY", OpStatus.STARTED, 1, "CONFIGURED")
    assert (done.status, done.state, done.error) == (OpStatus.DONE_OK, "RUNNING", "")
    assert ms(started) == running.variables["run_start_time_ms"]
    assert ms(done) == running.variables["run_start_completion_time_ms"]
    assert started.last_request_user == User("bob")
    # the run number is allocated before weight >= 0 calls: +50 sees it
    index = host.trace.index(("run", "START_ACTIVITY", "STARTED", 1))
    assert host.trace[index + 2] == ("ran", "kafka.PublishStartActivityUpdate()",
                                     "before_START_ACTIVITY")
    at_50 = host.contexts[0]
    assert at_50.environment.variables["run_number"] == "1"
    host.clear()
    stopped = manager.transition(env.id, "STOP_ACTIVITY")
    started, done = run_events(host)
    assert (started.transition, started.status, started.run_number, started.state) == (
        "STOP_ACTIVITY", OpStatus.STARTED, 1, "RUNNING")
    assert (done.status, done.run_number, done.state) == (OpStatus.DONE_OK, 1, "CONFIGURED")
    assert ms(started) == stopped.variables["run_end_time_ms"]
    assert ms(done) == stopped.variables["run_end_completion_time_ms"]
    assert stopped.run_number is None and "run_number" not in stopped.variables
    assert stopped.variables["last_run_number"] == "1"
    # the leave_RUNNING (EOR) call still saw the run number
    leave = next(c for c in host.contexts if c.trigger == "leave_RUNNING")
    assert leave.environment.variables["run_number"] == "1"
    again = manager.transition(env.id, "START_ACTIVITY")
    assert again.run_number == 2
    assert "run_end_time_ms" not in again.variables
    assert "run_end_completion_time_ms" not in again.variables
    manager.transition(env.id, "STOP_ACTIVITY")
    # a restart: a new store on the same file never reuses a number
    restarted = make(run_numbers=RunNumberStore(store.path))
    env2 = restarted.create()
    drive(restarted, env2.id, ["DEPLOY", "CONFIGURE"])
    assert restarted.transition(env2.id, "START_ACTIVITY").run_number == 3


def test_environments_by_state_and_active_runs(
    make: Callable[..., EnvironmentManager],
) -> None:
    manager = make()
    assert (manager.count_by_state(), manager.active_runs()) == ({}, 0)
    env = manager.create(detectors=["ITS"])
    drive(manager, env.id, ["DEPLOY", "CONFIGURE"])
    assert (manager.count_by_state(), manager.active_runs()) == ({"CONFIGURED": 1}, 0)
    manager.transition(env.id, "START_ACTIVITY")
    other = manager.create(detectors=["TPC"])
    assert manager.count_by_state() == {"RUNNING": 1, "STANDBY": 1}
    assert manager.active_runs() == 1
    manager.transition(env.id, "STOP_ACTIVITY")
    manager.destroy(other.id)
    assert (manager.count_by_state(), manager.active_runs()) == ({"CONFIGURED": 1}, 0)


def test_go_error_while_running(make: Callable[..., EnvironmentManager], host: FakeHost) -> None:
    manager = make()
    env = manager.create()
    drive(manager, env.id, PATHS["RUNNING"])
    host.clear()
    snap = manager.transition(env.id, "GO_ERROR")
    started, done = run_events(host)
    assert (started.transition, started.status, started.state) == (
        "GO_ERROR", OpStatus.STARTED, "RUNNING")
    assert (done.transition, done.status, done.state, done.run_number) == (
        "GO_ERROR", OpStatus.DONE_OK, "ERROR", 1)
    assert ms(started) == snap.variables["run_end_time_ms"]
    assert ms(done) == snap.variables["run_end_completion_time_ms"]
    assert snap.run_number is None and snap.variables["last_run_number"] == "1"
    other = manager.create()
    drive(manager, other.id, ["DEPLOY", "CONFIGURE"])
    host.clear()
    manager.transition(other.id, "GO_ERROR")
    assert run_events(host) == []


def test_failed_start_reports_done_error_and_goes_to_error(
    make: Callable[..., EnvironmentManager], host: FakeHost
) -> None:
    host.export("p.Fail", _boom)
    manager = make()
    env = manager.create(Workflow("wf", calls=[CallSpec("p.Fail()", "enter_RUNNING",
                                                        critical=True)]))
    drive(manager, env.id, ["DEPLOY", "CONFIGURE"])
    host.clear()
    with pytest.raises(TransitionError, match="START_ACTIVITY failed: RuntimeError: boom"):
        manager.transition(env.id, "START_ACTIVITY")
    assert manager.get(env.id).state == "ERROR"
    runs = run_events(host)
    assert [(e.transition, e.status) for e in runs] == [
        ("START_ACTIVITY", OpStatus.STARTED), ("START_ACTIVITY", OpStatus.DONE_ERROR),
        ("GO_ERROR", OpStatus.STARTED), ("GO_ERROR", OpStatus.DONE_OK)]
    assert "boom" in runs[1].error
    envs = [e for e in host.of("on_env_transition_step") if not e.step]
    assert [(e.transition, e.message, e.status, e.environment.state) for e in envs] == [
        ("START_ACTIVITY", "transition starting", OpStatus.STARTED, "CONFIGURED"),
        ("START_ACTIVITY", "transition error", OpStatus.DONE_ERROR, "RUNNING"),
        ("", "a critical error occurred, GO_ERROR transition imminent", OpStatus.NULL,
         "RUNNING"),
        ("GO_ERROR", "transition starting", OpStatus.STARTED, "RUNNING"),
        ("GO_ERROR", "transition completed successfully", OpStatus.DONE_OK, "ERROR"),
    ]
    assert envs[2].error == "transition START_ACTIVITY failed: RuntimeError: boom"


def test_run_number_on_environment_events(
    make: Callable[..., EnvironmentManager], host: FakeHost
) -> None:
    manager = make()
    env = manager.create()
    drive(manager, env.id, ["DEPLOY", "CONFIGURE"])
    host.clear()
    manager.transition(env.id, "START_ACTIVITY")
    manager.transition(env.id, "STOP_ACTIVITY")
    numbers = [(e.step or e.message, e.finished, e.environment.run_number or 0)
               for e in host.of("on_env_transition_step")]
    # 0 until before_START_ACTIVITY finished, then the run's number up to and including the
    # after_STOP_ACTIVITY finished event, 0 again on its "transition completed successfully"
    assert numbers[:3] == [("transition starting", False, 0),
                           ("before_START_ACTIVITY", False, 0),
                           ("before_START_ACTIVITY", True, 1)]
    assert all(n == 1 for _, _, n in numbers[2:-1])
    assert numbers[-2:] == [("after_STOP_ACTIVITY", True, 1),
                            ("transition completed successfully", True, 0)]


def test_cancelled_start_ends_the_run_and_cancelled_stop_keeps_it(
    make: Callable[..., EnvironmentManager], host: FakeHost
) -> None:
    failing = {"on": True}

    def maybe_fail(ctx: CallContext) -> str:
        if failing["on"]:
            raise RuntimeError("refused")
        return ""

    host.export("p.Gate", maybe_fail)
    calls = [CallSpec("p.Gate()", "before_START_ACTIVITY+60", critical=True),
             CallSpec("p.Gate()", "leave_RUNNING", critical=True)]
    manager = make()
    env = manager.create(Workflow("wf", calls=calls))
    drive(manager, env.id, ["DEPLOY", "CONFIGURE"])
    host.clear()
    with pytest.raises(TransitionError, match="refused"):
        manager.transition(env.id, "START_ACTIVITY")
    snap = manager.get(env.id)
    assert snap.state == "CONFIGURED" and snap.run_number is None
    assert snap.variables["last_run_number"] == "1"
    assert [(e.status, e.run_number) for e in run_events(host)] == [
        (OpStatus.STARTED, 1), (OpStatus.DONE_ERROR, 1)]
    assert "cancelled" in run_events(host)[1].error
    failing["on"] = False
    assert manager.transition(env.id, "START_ACTIVITY").run_number == 2
    failing["on"] = True
    host.clear()
    with pytest.raises(TransitionError, match="leave_RUNNING"):
        manager.transition(env.id, "STOP_ACTIVITY")
    snap = manager.get(env.id)
    assert snap.state == "RUNNING" and snap.run_number == 2
    assert "run_end_time_ms" not in snap.variables
    assert [(e.transition, e.status) for e in run_events(host)] == [
        ("STOP_ACTIVITY", OpStatus.STARTED), ("STOP_ACTIVITY", OpStatus.DONE_ERROR)]


# ---------------------------------------------------------------- CREATE and DESTROY


def test_create_steps(make: Callable[..., EnvironmentManager], host: FakeHost) -> None:
    host.export("p.X")
    wf = Workflow("readout", description="d", calls=[CallSpec("p.X()", "before_CREATE"),
                                                       CallSpec("p.X()", "CREATE")])
    manager = make()
    t0 = time.time_ns() // 1_000_000
    snap = manager.create(wf, detectors=["ITS", "TPC"], run_type="COSMICS", user=User("carol"))
    t1 = time.time_ns() // 1_000_000
    steps: list[TransitionStepEvent] = host.of("on_env_transition_step")
    assert [(e.transition, e.step, e.status, e.message, e.environment.state)
            for e in steps] == [
        ("CREATE", "", OpStatus.STARTED, "transition starting", "PENDING"),
        ("CREATE", "before_CREATE", OpStatus.STARTED, "instantiating", "PENDING"),
        ("CREATE", "before_CREATE", OpStatus.ONGOING, "running hooks", "PENDING"),
        ("CREATE", "CREATE", OpStatus.ONGOING, "loading workflow", "PENDING"),
        ("CREATE", "after_CREATE", OpStatus.DONE_OK, "workflow loaded", "STANDBY"),
        ("CREATE", "", OpStatus.DONE_OK, "transition completed successfully", "STANDBY"),
    ]
    assert [e.include_vars for e in steps] == [False] * 4 + [True, False]
    assert host.trace[3:6] == call_entries("p.X()", "before_CREATE")
    assert host.trace[7:10] == call_entries("p.X()", "CREATE")
    assert snap.state == "STANDBY"
    assert t0 <= int(snap.variables["enter_state_time_ms"]) <= t1
    assert snap.workflow is not None and snap.workflow.name == "readout"
    assert snap.last_request_user == User("carol")
    assert [s.id for s in manager.list()] == [snap.id]
    assert host.of("on_role_event") == []  # initial role values publish nothing


def _creation_failure(host: FakeHost) -> tuple[TransitionStepEvent, TransitionStepEvent]:
    steps: list[TransitionStepEvent] = host.of("on_env_transition_step")
    error, cannot = steps[-2:]
    assert (error.transition, error.message, error.status, error.environment.state) == (
        "CREATE", "transition error", OpStatus.DONE_ERROR, "PENDING")
    assert (cannot.transition, cannot.step, cannot.message, cannot.environment.state) == (
        "", "", "cannot create new environment", "ERROR")
    assert error.error == cannot.error
    return error, cannot


def test_create_cancelled_by_a_critical_call(
    make: Callable[..., EnvironmentManager], host: FakeHost
) -> None:
    host.export("p.Fail", _boom)
    manager = make()
    with pytest.raises(TransitionError, match="cannot create new environment"):
        manager.create(Workflow("wf", calls=[CallSpec("p.Fail()", "CREATE", critical=True)]))
    assert _creation_failure(host)[0].error == "RuntimeError: boom"
    assert manager.list() == []
    with pytest.raises(ValueError, match="detectors listed twice"):
        manager.create(detectors=["ITS", "ITS"])


def test_create_with_a_broken_template(
    make: Callable[..., EnvironmentManager], host: FakeHost, tmp_path: Path
) -> None:
    from aliecs_integration.engine.workflow import TemplateRef

    broken = tmp_path / "broken.yaml"
    broken.write_text("name: rd\nroles:\n  - name: a\n    task: {class: x}\n"
                      "  - name: b\n    roles:\n      - name: c\n        call: {func: p.X()}\n")
    manager = make()
    with pytest.raises(TransitionError, match="cannot load workflow template"):
        manager.create(TemplateRef(broken))
    error, _ = _creation_failure(host)
    assert error.error.startswith(f"cannot load workflow template: {broken}: role rd.b.c.call")
    assert "trigger" in error.error
    assert [e.message for e in host.of("on_env_transition_step")] == [
        "transition starting", "transition error", "cannot create new environment"]
    assert manager.list() == []


def test_a_detector_is_held_by_one_environment(
    make: Callable[..., EnvironmentManager], host: FakeHost
) -> None:
    manager = make()
    first = manager.create(detectors=["ITS", "TPC"])
    host.clear()
    with pytest.raises(TransitionError, match=r"ITS \(environment " + first.id):
        manager.create(detectors=["ITS"])
    assert _creation_failure(host)[0].error.startswith("detector(s) already in use: ITS")
    manager.destroy(first.id)
    assert manager.create(detectors=["ITS"]).state == "STANDBY"


def test_destroy_a_running_environment(
    make: Callable[..., EnvironmentManager], host: FakeHost
) -> None:
    host.export("kafka.PublishEnterStateUpdate")
    host.export("kafka.PublishLeaveStateUpdate")
    manager = make(settings_runtime_vars={"kafka_enabled": "true"})
    env = manager.create()
    drive(manager, env.id, PATHS["RUNNING"])
    host.clear()
    last = manager.destroy(env.id)
    teardown = run_events(host)
    assert [(e.transition, e.status, e.run_number, e.state, e.last_request_user)
            for e in teardown] == [("TEARDOWN", OpStatus.STARTED, 1, "RUNNING", None)]
    assert ms(teardown[0]) == last.variables["run_end_time_ms"]
    assert "run_end_completion_time_ms" in last.variables
    steps: list[TransitionStepEvent] = host.of("on_env_transition_step")
    assert [(e.step, e.status, e.message, e.environment.state) for e in steps] == [
        ("before_DESTROY", OpStatus.STARTED, "workflow teardown started", "RUNNING"),
        ("leave_RUNNING", OpStatus.ONGOING, "workflow teardown ongoing", "RUNNING"),
        ("DESTROY", OpStatus.ONGOING, "releasing tasks", "RUNNING"),
        ("after_DESTROY", OpStatus.ONGOING, "running DESTROY hooks", "RUNNING"),
        ("after_DESTROY", OpStatus.DONE_OK, "environment teardown complete", "DONE"),
    ]
    assert {e.transition for e in steps} == {"DESTROY"}
    assert {e.environment.run_number or 0 for e in steps} == {0}
    order = [e for e in host.trace if e[0] in ("leave", "run", "call", "ran")]
    assert order == [("leave", "RUNNING"), ("run", "TEARDOWN", "STARTED", 1),
                     *call_entries("kafka.PublishLeaveStateUpdate()", "leave_RUNNING"),
                     *call_entries("kafka.PublishEnterStateUpdate()", "DESTROY")]
    # the EOR call of the teardown still sees the run number
    leave = next(c for c in host.contexts if c.trigger == "leave_RUNNING")
    assert leave.environment.variables["run_number"] == "1"
    released = host.of("on_task_event")
    assert released and all((t.state, t.status, t.environment_id, t.path) ==
                            ("DONE", "INACTIVE", "", "") for t in released)
    assert manager.list() == []
    with pytest.raises(EnvironmentNotFound):
        manager.get(env.id)
    with pytest.raises(EnvironmentNotFound):
        manager.transition(env.id, "STOP_ACTIVITY")
    with pytest.raises(EnvironmentNotFound):
        manager.destroy(env.id)


@pytest.mark.parametrize("state", sorted(s for s in PATHS if s != "DONE"))
def test_destroy_from_any_state_but_done(
    make: Callable[..., EnvironmentManager], host: FakeHost, state: str
) -> None:
    manager = make()
    env = manager.create()
    drive(manager, env.id, PATHS[state])
    host.clear()
    assert manager.destroy(env.id).state == "DONE"
    steps = [e for e in host.of("on_env_transition_step") if e.transition == "DESTROY"]
    teardown_from = "DEPLOYED" if state == "CONFIGURED" else state  # RESET first
    assert [e.step for e in steps] == ["before_DESTROY", f"leave_{teardown_from}", "DESTROY",
                                       "after_DESTROY", "after_DESTROY"]
    resets = {e.transition for e in host.of("on_env_transition_step")} - {"DESTROY"}
    assert resets == ({"RESET"} if state == "CONFIGURED" else set())
    assert manager.list() == []


def test_destroy_refused_from_done_without_events(
    make: Callable[..., EnvironmentManager], host: FakeHost
) -> None:
    manager = make()
    env = manager.create()
    manager.transition(env.id, "EXIT")
    host.clear()
    with pytest.raises(TransitionError, match="is DONE: it cannot be destroyed"):
        manager.destroy(env.id)
    assert host.events == []
    with pytest.raises(EnvironmentNotFound):
        manager.destroy("NOSUCHID")
    assert host.events == []


def test_destroy_failure_finishes_with_error(
    make: Callable[..., EnvironmentManager], host: FakeHost
) -> None:
    host.export("p.Fail", _boom)
    manager = make()
    env = manager.create(Workflow("wf", calls=[CallSpec("p.Fail()", "before_DESTROY",
                                                        critical=True)]))
    host.clear()
    assert manager.destroy(env.id).state == "DONE"
    last = host.of("on_env_transition_step")[-1]
    assert (last.status, last.message, last.error, last.environment.state) == (
        OpStatus.DONE_ERROR, "environment teardown finished with error", "RuntimeError: boom",
        "DONE")
    assert manager.list() == []


# ---------------------------------------------------------------- tasks and roles


def test_tasks_and_roles_through_a_run(
    make: Callable[..., EnvironmentManager], host: FakeHost
) -> None:
    manager = make()
    env = manager.create()
    host.clear()
    manager.transition(env.id, "DEPLOY")
    tasks = host.of("on_task_event")
    assert [(t.state, t.status) for t in tasks] == [("LAUNCHED", "INACTIVE")] * 3 + [
        ("STANDBY", "ACTIVE")] * 3
    first = tasks[0]
    assert first.class_name == "github.com/AliceO2Group/ControlWorkflows/tasks/readout@master"
    assert first.name == f"{first.class_name}#{first.task_id}"
    assert (first.path, first.environment_id) == ("default", env.id)
    assert first.traits is not None and first.traits.critical
    assert len({t.task_id for t in tasks}) == 3
    roles = {(r.role_path, r.status, r.state) for r in host.of("on_role_event")}
    assert ("default.readout", "INACTIVE", "") in roles
    assert ("default.readout", "", "LAUNCHED") in roles
    assert ("default.readout", "ACTIVE", "") in roles
    assert ("default.kafka.enter_RUNNING", "ACTIVE", "") in roles
    assert ("default", "ACTIVE", "") in roles and ("default", "", "STANDBY") in roles
    for r in host.of("on_role_event"):  # one field per event
        assert bool(r.status) != bool(r.state) and r.environment_id == env.id
    host.clear()
    manager.transition(env.id, "CONFIGURE")
    assert [t.state for t in host.of("on_task_event")] == ["CONFIGURED"] * 3
    # only changes: no status events, call roles have no state; the tasks moved together, so
    # the root goes straight to CONFIGURED
    assert [(r.role_path, r.state) for r in host.of("on_role_event")] == [
        ("default.readout", "CONFIGURED"), ("default.stfb", "CONFIGURED"),
        ("default.qc", "CONFIGURED"), ("default", "CONFIGURED")]
    host.clear()
    manager.transition(env.id, "GO_ERROR")  # tasks CONFIGURED stay CONFIGURED: no change
    assert host.of("on_task_event") == [] and host.of("on_role_event") == []


@pytest.mark.parametrize("critical", [True, False])
def test_a_failing_task(
    make: Callable[..., EnvironmentManager], host: FakeHost, critical: bool
) -> None:
    manager = make()
    env = manager.create()
    drive(manager, env.id, PATHS["RUNNING"])
    host.clear()
    path = "default.readout" if critical else "default.qc"
    snap = manager.fail_task(env.id, path)
    failed = host.of("on_task_event")[0]
    assert (failed.state, failed.path) == ("ERROR", "default")
    roles = [(r.role_path, r.state) for r in host.of("on_role_event") if r.state]
    if critical:
        assert snap.state == "ERROR"
        assert roles[:2] == [(path, "ERROR"), ("default", "ERROR")]
        imminent = next(e for e in host.of("on_env_transition_step")
                        if e.message.startswith("a critical error"))
        assert imminent.error == (f"critical task '{path}' on host '{failed.hostname}' "
                                  "transitioned to ERROR")
        assert [(e.transition, e.status) for e in run_events(host)] == [
            ("GO_ERROR", OpStatus.STARTED), ("GO_ERROR", OpStatus.DONE_OK)]
        # GO_ERROR stopped the RUNNING tasks; the failed one stays in ERROR
        assert {t.state for t in host.of("on_task_event")[1:]} == {"CONFIGURED"}
    else:
        assert snap.state == "RUNNING"
        assert roles == [(path, "ERROR")]  # the root combines critical children only
        assert host.of("on_env_transition_step") == []
    with pytest.raises(ValueError, match=r"no task for role 'default\.nope'"):
        manager.fail_task(env.id, "default.nope")


# ---------------------------------------------------------------- misc


def test_integrated_service_events(
    make: Callable[..., EnvironmentManager], host: FakeHost
) -> None:
    manager = make()
    env = manager.create(Workflow("readout"))
    manager.report_integrated_service_event(
        env.id, "DCS", "dcs.StartOfRun()", OpStatus.ONGOING, step="ITS",
        step_status=OpStatus.DONE_OK, payload='{"a": 1}')
    event = host.of("on_integrated_service_event")[0]
    assert (event.service, event.environment_id, event.operation_name, event.operation_status,
            event.operation_step, event.operation_step_status, event.payload, event.name) == (
        "dcs", env.id, "dcs.StartOfRun()", OpStatus.ONGOING, "ITS", OpStatus.DONE_OK,
        '{"a": 1}', "readout")
    with pytest.raises(ValueError, match="integrated service name"):
        manager.report_integrated_service_event(env.id, "", "x", OpStatus.STARTED)


def test_nonblocking_calls_run_on_the_driving_thread_and_overruns_time_out(
    make: Callable[..., EnvironmentManager], host: FakeHost
) -> None:
    @nonblocking
    def where(ctx: CallContext) -> str:
        return threading.current_thread().name

    @nonblocking
    def slow(ctx: CallContext) -> str:
        time.sleep(0.05)
        return "slow"

    host.functions["p.Where"] = where
    host.functions["p.Slow"] = slow
    calls = [CallSpec("p.Where()", "before_DEPLOY", return_var="thread"),
             CallSpec("p.Slow()", "before_CONFIGURE", timeout=0.01, critical=True)]
    manager = make()
    env = manager.create(Workflow("wf", calls=calls))
    driver = threading.Thread(target=manager.transition, args=(env.id, "DEPLOY"), name="driver")
    driver.start()
    driver.join(5)
    assert manager.get(env.id).variables["thread"] == "driver"
    with pytest.raises(TransitionError, match=r"critical call p\.Slow\(\) at before_CONFIGURE: "
                       r"DONE_TIMEOUT: ran 0\.0\d+s past its timeout of 0\.01s"):
        manager.transition(env.id, "CONFIGURE")
    assert manager.get(env.id).state == "DEPLOYED"


def test_closed_manager_fails_calls(
    make: Callable[..., EnvironmentManager], host: FakeHost
) -> None:
    host.export("p.X")
    manager = make()
    env = manager.create(Workflow("wf", calls=[CallSpec("p.X()", "before_DEPLOY")]))
    manager.close()
    manager.transition(env.id, "DEPLOY")
    assert host.of("on_call")[-1].error == "call runner is closed"


def test_environments_do_not_block_each_other(
    make: Callable[..., EnvironmentManager], host: FakeHost
) -> None:
    in_call = threading.Event()
    release = threading.Event()

    def slow(ctx: CallContext) -> str:
        in_call.set()
        release.wait(5)
        return ""

    host.export("p.Slow", slow)
    manager = make()
    slow_env = manager.create(Workflow("slow", calls=[CallSpec("p.Slow()", "before_DEPLOY")]))
    fast_env = manager.create()
    worker = threading.Thread(target=manager.transition, args=(slow_env.id, "DEPLOY"))
    worker.start()
    try:
        assert in_call.wait(5)
        start = time.monotonic()
        drive(manager, fast_env.id, PATHS["RUNNING"] + ["STOP_ACTIVITY"])
        manager.destroy(fast_env.id)
        assert time.monotonic() - start < 1.0
        assert worker.is_alive()  # the slow environment is still in its call
        assert manager.get(slow_env.id).state == "STANDBY"  # get() does not wait for it
    finally:
        release.set()
        worker.join(5)
    assert manager.get(slow_env.id).state == "DEPLOYED"


def test_the_same_environment_is_serialised(
    make: Callable[..., EnvironmentManager], host: FakeHost
) -> None:
    def pause(ctx: CallContext) -> str:
        time.sleep(0.05)
        return ""

    host.export("p.Pause", pause)
    manager = make()
    env = manager.create(Workflow("wf", calls=[CallSpec("p.Pause()", "before_DEPLOY")]))
    host.clear()
    outcomes: list[str] = []

    def deploy() -> None:
        try:
            manager.transition(env.id, "DEPLOY")
            outcomes.append("ok")
        except TransitionError:
            outcomes.append("refused")

    threads = [threading.Thread(target=deploy) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert sorted(outcomes) == ["ok", "refused"]
    steps = [(e[1], e[2]) for e in host.trace if e[0] == "step"]
    assert steps == [(s, p) for s in fsm.step_names("DEPLOY", "STANDBY", "DEPLOYED")
                     for p in ("started", "finished")]


def test_new_defaults_reach_an_environment_created_while_they_change(
    make: Callable[..., EnvironmentManager], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live settings: new runtime variables applied between an environment's construction (with
    the old ones) and its registration still reach it; one created after sees them at once."""
    from aliecs_integration.engine import manager as module

    manager = make(settings_runtime_vars={"mine": "old"})
    real = module.Environment
    changed: list[bool] = []

    def built_then_changed(*args: Any, **kwargs: Any) -> Any:
        env = real(*args, **kwargs)
        if not changed:  # the reload lands right after the first construction
            changed.append(True)
            manager.set_defaults({"mine": "new"}, {"plugin_default": "1"})
        return env

    monkeypatch.setattr(module, "Environment", built_then_changed)
    raced = manager.create()
    assert changed
    assert raced.variables["mine"] == "new"
    assert manager.get(raced.id).variables["plugin_default"] == "1"
    assert manager.create().variables["mine"] == "new"
