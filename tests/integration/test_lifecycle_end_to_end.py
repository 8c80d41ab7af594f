"""End to end: settings and runtime vars from the real Consul, environments driven through the
manager, both built-in plugins loaded through their entry points, everything read back from the
real broker and decoded with our generated classes."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aliecs_integration.engine import fsm
from aliecs_integration.engine.manager import EnvironmentManager
from aliecs_integration.engine.run_numbers import RunNumberStore
from aliecs_integration.engine.workflow import CallSpec, Workflow, default_workflow
from aliecs_integration.errors import TransitionError
from aliecs_integration.hookspecs import hookimpl
from aliecs_integration.host import PluginHost
from aliecs_integration.pb import events_pb2, kafka_pb2
from aliecs_integration.records import (
    CallEvent,
    IntegratedServiceEvent,
    OpStatus,
    RunEvent,
    TransitionStepEvent,
    User,
)
from aliecs_integration.settings.core import Settings
from aliecs_integration.settings.sources import load_consul, push_to_consul
from tests.kafka_helpers import existing_topics, read_topics


class Recorder:
    """Records every event the hooks deliver, to compare with what reached the broker."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[object] = []

    def _add(self, event: object) -> None:
        with self.lock:
            self.events.append(event)

    @hookimpl
    def on_env_transition_step(self, event: TransitionStepEvent) -> None:
        self._add(event)

    @hookimpl
    def on_run_sor_eor(self, event: RunEvent) -> None:
        self._add(event)

    @hookimpl
    def on_call(self, event: CallEvent) -> None:
        self._add(event)

    @hookimpl
    def on_integrated_service_event(self, event: IntegratedServiceEvent) -> None:
        self._add(event)

    def of(self, kind: type, env_id: str) -> list[Any]:
        key = "environment" if kind is TransitionStepEvent else "environment_id"
        return [
            e for e in self.events
            if isinstance(e, kind) and (
                e.environment.id if key == "environment" else getattr(e, key)  # type: ignore[attr-defined]
            ) == env_id
        ]


def settings_from_consul(
    consul_address: str, tmp_path: Path, prefix: str, document: dict[str, Any],
    runtime_vars: dict[str, str],
) -> Settings:
    """Push ``document`` and ``runtime_vars`` into Consul under keys unique to the test and
    load them back the way the host does at start."""
    key, vars_prefix = f"{prefix}/components/settings", f"{prefix}/runtime/vars/"
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(document))
    push_to_consul(consul_address, path, runtime_vars=runtime_vars, settings_key=key,
                   vars_prefix=vars_prefix)
    return load_consul(consul_address, settings_key=key, vars_prefix=vars_prefix)


@pytest.fixture
def stack(
    consul_address: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> Iterator[Callable[[list[str]], tuple[PluginHost, EnvironmentManager, Recorder]]]:
    made: list[tuple[PluginHost, EnvironmentManager]] = []

    def make(plugins: list[str]) -> tuple[PluginHost, EnvironmentManager, Recorder]:
        settings = settings_from_consul(
            consul_address, tmp_path, topic_prefix,
            {
                "kafkaEndpoints": [kafka_bootstrap],
                "kafkaEndpoint": kafka_bootstrap,
                "integrationPlugins": plugins,
                "kafkaProducer": {"topicRoot": topic_prefix, "topics": {"replicationFactor": 1}},
            },
            {"kafka_enabled": "true"},
        )
        assert settings.runtime_vars["kafka_enabled"] == "true"
        recorder = Recorder()
        host = PluginHost(settings, extra_plugins={"recorder": recorder})
        host.start()
        manager = EnvironmentManager(
            host, settings_runtime_vars=settings.runtime_vars,
            run_numbers=RunNumberStore(tmp_path / "run_number"), call_timeout_default_s=10,
        )
        made.append((host, manager))
        return host, manager, recorder

    yield make
    for host, manager in made:
        manager.close()
        host.stop(timeout_s=5)


FAIL = CallSpec("nosuch.Fail()", "after_CONFIGURE")
WORKFLOW = Workflow(name="e2e", calls=(*default_workflow().calls, FAIL))


def drive_a(manager: EnvironmentManager, env_id: str) -> None:
    for name in ("DEPLOY", "CONFIGURE", "START_ACTIVITY"):
        manager.transition(env_id, name, user=User(name="alice", id=7))
    manager.report_integrated_service_event(env_id, "DCS", "dcs.StartOfRun()", OpStatus.STARTED)
    manager.report_integrated_service_event(
        env_id, "dcs", "dcs.StartOfRun()", OpStatus.DONE_OK, payload='{"detectors":["ITS"]}')
    manager.report_integrated_service_event(env_id, "newsvc", "newsvc.Ping()", OpStatus.DONE_OK)
    for name in ("STOP_ACTIVITY", "START_ACTIVITY", "GO_ERROR", "RECOVER"):
        manager.transition(env_id, name)
    manager.destroy(env_id)


def drive_b(manager: EnvironmentManager, env_id: str) -> None:
    for name in ("DEPLOY", "CONFIGURE", "START_ACTIVITY", "STOP_ACTIVITY", "RESET", "EXIT"):
        manager.transition(env_id, name)
    with pytest.raises(TransitionError, match="is DONE"):  # refused, no event
        manager.destroy(env_id)


def run_parallel(*jobs: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def wrap(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors


def decode_by_key(messages: list[Any]) -> dict[str, list[events_pb2.Event]]:
    out: dict[str, list[events_pb2.Event]] = defaultdict(list)
    for msg in messages:
        out[msg.key().decode() if msg.key() is not None else ""].append(
            events_pb2.Event.FromString(msg.value()))
    return out


def transition_steps(name: str, source: str, target: str) -> list[tuple[str, str]]:
    """(transition, step) of every environment event of one successful transition."""
    pairs = [(name, step) for step in fsm.step_names(name, source, target) for _ in (0, 1)]
    return [(name, ""), *pairs, (name, "")]


EXPECTED_STEPS_A = [
    ("CREATE", ""), ("CREATE", "before_CREATE"), ("CREATE", "before_CREATE"),
    ("CREATE", "CREATE"), ("CREATE", "after_CREATE"), ("CREATE", ""),
    *transition_steps("DEPLOY", "STANDBY", "DEPLOYED"),
    *transition_steps("CONFIGURE", "DEPLOYED", "CONFIGURED"),
    *transition_steps("START_ACTIVITY", "CONFIGURED", "RUNNING"),
    *transition_steps("STOP_ACTIVITY", "RUNNING", "CONFIGURED"),
    *transition_steps("START_ACTIVITY", "CONFIGURED", "RUNNING"),
    *transition_steps("GO_ERROR", "RUNNING", "ERROR"),
    *transition_steps("RECOVER", "ERROR", "DEPLOYED"),
    ("DESTROY", "before_DESTROY"), ("DESTROY", "leave_DEPLOYED"), ("DESTROY", "DESTROY"),
    ("DESTROY", "after_DESTROY"), ("DESTROY", "after_DESTROY"),
]


def test_full_lifecycle_two_environments(
    stack: Callable[[list[str]], tuple[PluginHost, EnvironmentManager, Recorder]],
    kafka_bootstrap: str, topic_prefix: str,
) -> None:
    host, manager, recorder = stack(["kafka"])
    assert {s.name for s in host.list_plugins() if s.loaded} == {
        "core-kafka", "kafka", "recorder"}
    a = manager.create(WORKFLOW, detectors=["TPC", "ITS"], run_type="PHYSICS").id
    b = manager.create(WORKFLOW, detectors=["MCH"], run_type="TECHNICAL",
                       variables={"kafka_enabled": "false"}).id
    run_parallel(lambda: drive_a(manager, a), lambda: drive_b(manager, b))
    failures = host.stop(timeout_s=20).failures
    assert failures == []

    root = topic_prefix
    core = {name: f"{root}.{name}" for name in ("environment", "run", "call", "role")}
    services = [f"{root}.integrated_service.dcs", f"{root}.integrated_service.newsvc"]
    with recorder.lock:
        steps = {e: recorder.of(TransitionStepEvent, e) for e in (a, b)}
        runs = {e: recorder.of(RunEvent, e) for e in (a, b)}
        calls = {e: recorder.of(CallEvent, e) for e in (a, b)}
    expected_total = sum(len(v) for d in (steps, runs, calls) for v in d.values()) + 3
    got = read_topics(kafka_bootstrap, [*core.values(), *services], expected_total)

    # aliecs.environment: every step event, exactly once, in order per key, fields mapped
    env_events = decode_by_key(got[core["environment"]])
    assert set(env_events) == {a, b}
    for env_id in (a, b):
        decoded = [(e.environmentEvent.transition, e.environmentEvent.transitionStep,
                    e.environmentEvent.state, e.environmentEvent.transitionStatus,
                    e.environmentEvent.message, e.environmentEvent.runNumber,
                    e.timestamp, e.timestampNano) for e in env_events[env_id]]
        recorded = [(s.transition, s.step, s.environment.state, int(s.status), s.message,
                     s.environment.run_number or 0, s.timestamp_ns // 1_000_000, s.timestamp_ns)
                    for s in steps[env_id]]
        assert decoded == recorded
    pairs_a = [(t, s) for t, s, *_ in decoded_steps(env_events[a])]
    assert pairs_a == EXPECTED_STEPS_A
    first_a = env_events[a][0].environmentEvent
    assert first_a.state == "PENDING" and first_a.transition == "CREATE"
    deployed = [e.environmentEvent for e in env_events[a]
                if e.environmentEvent.transitionStep == "enter_DEPLOYED"]
    assert deployed[-1].state == "DEPLOYED"
    assert deployed[0].lastRequestUser.name == "alice"
    assert deployed[0].workflowTemplateInfo.name == "e2e"
    # vars on the `workflow loaded` event only
    with_vars = [e.environmentEvent for e in env_events[a] if e.environmentEvent.vars]
    assert [e.message for e in with_vars] == ["workflow loaded"]
    assert with_vars[0].vars["environment_id"] == a
    assert with_vars[0].vars["kafka_enabled"] == "true"
    # the failing call is not critical: it does not fail its step
    after_configure = [e.environmentEvent for e in env_events[a]
                       if e.environmentEvent.transitionStep == "after_CONFIGURE"
                       and e.environmentEvent.message == "transition step finished"]
    assert after_configure
    assert all(f.transitionStatus == events_pb2.ONGOING and not f.error
               for f in after_configure)
    last_b = env_events[b][-1].environmentEvent
    assert (last_b.transition, last_b.message, last_b.state) == (
        "EXIT", "transition completed successfully", "DONE")

    # aliecs.run: SOR/EOR per key, timestamps = the moment described
    run_events = decode_by_key(got[core["run"]])
    assert set(run_events) == {a, b}
    summary_a = [(e.runEvent.transition, e.runEvent.transitionStatus, e.runEvent.runNumber)
                 for e in run_events[a]]
    r1, r2 = summary_a[0][2], summary_a[4][2]
    assert 0 < r1 < r2
    assert summary_a == [
        ("START_ACTIVITY", events_pb2.STARTED, r1), ("START_ACTIVITY", events_pb2.DONE_OK, r1),
        ("STOP_ACTIVITY", events_pb2.STARTED, r1), ("STOP_ACTIVITY", events_pb2.DONE_OK, r1),
        ("START_ACTIVITY", events_pb2.STARTED, r2), ("START_ACTIVITY", events_pb2.DONE_OK, r2),
        ("GO_ERROR", events_pb2.STARTED, r2), ("GO_ERROR", events_pb2.DONE_OK, r2),
    ]
    assert [e.timestampNano for e in run_events[a]] == [r.timestamp_ns for r in runs[a]]
    assert run_events[a][0].runEvent.lastRequestUser.id == 7

    # aliecs.call: the failing call is a DONE_ERROR, the legacy calls run only where enabled
    call_events = decode_by_key(got[core["call"]])
    b_calls = [(e.callEvent.func, e.callEvent.callStatus) for e in call_events[b]]
    assert b_calls == [("nosuch.Fail()", events_pb2.STARTED),
                       ("nosuch.Fail()", events_pb2.DONE_ERROR)]
    assert "unknown function" in call_events[b][1].callEvent.error
    a_funcs = {e.callEvent.func for e in call_events[a]}
    assert a_funcs == {"kafka.PublishEnterStateUpdate()", "kafka.PublishLeaveStateUpdate()",
                       "kafka.PublishStartActivityUpdate()", "nosuch.Fail()"}
    assert [(e.callEvent.func, e.callEvent.callStatus, e.callEvent.error)
            for e in call_events[a]] == [(c.func, int(c.status), c.error) for c in calls[a]]
    assert all(e.callEvent.callStatus in (events_pb2.STARTED, events_pb2.DONE_OK)
               for e in call_events[a] if e.callEvent.func.startswith("kafka."))

    # integrated services: lower-case topic per service, a brand-new service topic included
    dcs = decode_by_key(got[services[0]])
    assert [(e.integratedServiceEvent.operationName, e.integratedServiceEvent.operationStatus)
            for e in dcs[a]] == [("dcs.StartOfRun()", events_pb2.STARTED),
                                 ("dcs.StartOfRun()", events_pb2.DONE_OK)]
    assert dcs[a][1].integratedServiceEvent.payload == '{"detectors":["ITS"]}'
    assert len(got[services[1]]) == 1

    # legacy topics: only environment a (kafka_enabled true) published
    legacy = [t for t in existing_topics(kafka_bootstrap, root + ".")
              if t.startswith((f"{root}.env_", f"{root}.before_", f"{root}.after_"))]
    legacy_msgs = read_topics(kafka_bootstrap, legacy, expected=1, settle=2.0)
    notifications: dict[str, list[Any]] = {}
    for topic, msgs in legacy_msgs.items():
        cls = kafka_pb2.ActiveRunsList if ".env_list." in topic else kafka_pb2.NewStateNotification
        notifications[topic.removeprefix(root + ".")] = [cls.FromString(m.value()) for m in msgs]
        assert all(m.key() is None for m in msgs)
    for topic, decoded_msgs in notifications.items():
        if topic == "env_list.RUNNING":
            continue
        assert {n.envInfo.environmentId for n in decoded_msgs} == {a}, topic
    sor = notifications["env_state.RUNNING"]
    assert [(n.envInfo.runNumber, n.envInfo.runType) for n in sor] == [(r1, "PHYSICS"),
                                                                     (r2, "PHYSICS")]
    assert sorted(sor[0].envInfo.detectors) == ["ITS", "TPC"]
    eor = notifications["env_leave_state.RUNNING"]
    assert [n.envInfo.state for n in eor] == ["RUNNING", "RUNNING"]
    assert [n.envInfo.state for n in notifications["env_state.UNKNOWN"]] == ["UNKNOWN"]
    assert len(notifications["before_start_activity"]) == 2
    assert len(notifications["after_start_activity"]) == 2
    lists = [[r.environmentId for r in m.activeRuns] for m in notifications["env_list.RUNNING"]]
    assert lists[0] == [] and [a] in lists and lists[-1] == []


def decoded_steps(events: list[events_pb2.Event]) -> list[tuple[str, str]]:
    return [(e.environmentEvent.transition, e.environmentEvent.transitionStep) for e in events]


def test_legacy_plugin_absent_when_not_named(
    stack: Callable[[list[str]], tuple[PluginHost, EnvironmentManager, Recorder]],
    kafka_bootstrap: str, topic_prefix: str,
) -> None:
    host, manager, _ = stack([])
    status = {s.name: s for s in host.list_plugins()}
    assert status["kafka"].loaded is False
    assert "not named in integrationPlugins" in status["kafka"].reason
    assert host.call_function("kafka.PublishEnterStateUpdate") is None
    env = manager.create(detectors=["ITS"], run_type="PHYSICS").id
    manager.transition(env, "DEPLOY")
    host.stop(timeout_s=10)
    topics = existing_topics(kafka_bootstrap, topic_prefix + ".")
    assert f"{topic_prefix}.environment" in topics
    assert not [t for t in topics if ".env_" in t or "start_activity" in t]
    envs = read_topics(kafka_bootstrap, [f"{topic_prefix}.environment"], expected=18)
    assert len(envs[f"{topic_prefix}.environment"]) == 18  # CREATE: 6 events, DEPLOY: 12
