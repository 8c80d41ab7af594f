"""Unit tests of the core-kafka plugin: record → events.Event mapping, keys, topics, lifecycle.

The plugin's publisher is replaced by a recorder; the Publisher itself is tested in
test_publisher.py and against the real broker in tests/integration.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import attrs
import pluggy
import pytest
from aliecs_integration_plugins import core_kafka

from aliecs_integration import hookspecs
from aliecs_integration.errors import PublishError
from aliecs_integration.pb import events_pb2
from aliecs_integration.publish.headers import Headers
from aliecs_integration.publish.metrics import Metrics
from aliecs_integration.publish.topics import TopicNames
from aliecs_integration.records import (
    CallEvent,
    CallTraits,
    ConnectionState,
    CoreEvent,
    CoreEventKind,
    DeliveryReport,
    EnvironmentSnapshot,
    HostStartEvent,
    HostStopEvent,
    IntegratedServiceEvent,
    OpStatus,
    PluginContext,
    RoleEvent,
    RunEvent,
    StateChangeEvent,
    TaskEvent,
    TransitionStepEvent,
    User,
    WorkflowTemplate,
)
from aliecs_integration.settings.core import Settings
from aliecs_integration.settings.producer import ProducerConfig

TS = 1_700_000_000_123_456_789


class Recorder:
    """Stands in for the Publisher."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.headers: list[tuple[str, Headers | None]] = []
        self.prepared: list[str] = []
        self.closed_with: float | None = None
        self.metrics = Metrics()

    def publish(self, topic: str, value: bytes, key: bytes | None = None,
                headers: Headers | None = None) -> None:
        self.sent.append((topic, value, key))
        self.headers.append((topic, headers))

    def prepare(self, topics: Any) -> None:
        self.prepared += list(topics)

    def flush(self, timeout_s: float) -> DeliveryReport:
        return DeliveryReport(delivered=7, failed=1, dropped=2, undelivered=3)

    def close(self, timeout_s: float | None = None) -> DeliveryReport:
        self.closed_with = timeout_s
        return DeliveryReport(delivered=7, failed=1, dropped=2, undelivered=3)

    def connection_state(self) -> ConnectionState:
        return ConnectionState.READY


def plugin_with_recorder(root: str = "aliecs") -> tuple[Any, Recorder]:
    settings = Settings(enable_kafka=False, producer=ProducerConfig(topic_root=root))
    plugin = core_kafka.CoreKafkaPlugin(PluginContext("core-kafka", settings))
    recorder = Recorder()
    plugin.publisher = recorder
    return plugin, recorder


def decode(value: bytes) -> events_pb2.Event:
    return events_pb2.Event.FromString(value)


ENV = EnvironmentSnapshot(
    id="2oDvieFrVTi",
    state="CONFIGURED",
    detectors=("ITS", "TPC"),
    run_type="PHYSICS",
    run_number=None,
    variables={"kafka_enabled": "true", "detectors": '["ITS","TPC"]'},
    last_request_user=User(name="jdoe", external_id=1234, id=5),
    workflow=WorkflowTemplate(name="readout", description="d", path="git/readout", public=True),
)


def test_transition_step_maps_to_an_environment_event() -> None:
    record = TransitionStepEvent(
        environment=ENV,
        transition="START_ACTIVITY",
        step="before_START_ACTIVITY",
        status=OpStatus.DONE_ERROR,
        finished=True,
        message="transition step finished",
        error="boom",
        timestamp_ns=TS,
    )
    enc = core_kafka.encode(record)
    assert (enc.topic, enc.key) == ("aliecs.environment", b"2oDvieFrVTi")
    event = decode(enc.value)
    assert event.timestamp == TS // 1_000_000 and event.timestampNano == TS
    assert event.WhichOneof("Payload") == "environmentEvent"
    env = event.environmentEvent
    assert (env.environmentId, env.state, env.runNumber) == ("2oDvieFrVTi", "CONFIGURED", 0)
    assert (env.error, env.message) == ("boom", "transition step finished")
    assert (env.transition, env.transitionStep) == ("START_ACTIVITY", "before_START_ACTIVITY")
    assert env.transitionStatus == events_pb2.DONE_ERROR
    assert dict(env.vars) == {}  # vars go on the `workflow loaded` event only
    with_vars = decode(core_kafka.encode(attrs.evolve(record, include_vars=True)).value)
    assert dict(with_vars.environmentEvent.vars) == {
        "kafka_enabled": "true", "detectors": '["ITS","TPC"]'}
    assert (env.lastRequestUser.name, env.lastRequestUser.externalId, env.lastRequestUser.id) == (
        "jdoe",
        1234,
        5,
    )
    wf = env.workflowTemplateInfo
    assert (wf.name, wf.description, wf.path, wf.public) == ("readout", "d", "git/readout", True)


def test_environment_event_without_user_workflow_but_with_run() -> None:
    env = EnvironmentSnapshot(
        id="e", state="RUNNING", run_number=42, last_request_user=User(name="u")
    )
    record = TransitionStepEvent(
        environment=env,
        transition="START_ACTIVITY",
        step="enter_RUNNING",
        status=OpStatus.ONGOING,
        finished=False,
        message="transition step starting",
    )
    event = decode(core_kafka.encode(record).value).environmentEvent
    assert event.runNumber == 42
    assert not event.HasField("workflowTemplateInfo")
    assert event.lastRequestUser.name == "u"
    assert not event.lastRequestUser.HasField("externalId")
    assert not event.lastRequestUser.HasField("id")
    bare = EnvironmentSnapshot(id="e", state="PENDING")
    event = decode(
        core_kafka.encode(
            TransitionStepEvent(
                environment=bare,
                transition="CREATE",
                step="before_CREATE",
                status=OpStatus.ONGOING,
                finished=False,
                message="m",
            )
        ).value
    ).environmentEvent
    assert not event.HasField("lastRequestUser")


def test_run_event_carries_the_moment_described() -> None:
    record = RunEvent(
        environment_id="e1",
        run_number=7,
        state="RUNNING",
        transition="STOP_ACTIVITY",
        status=OpStatus.STARTED,
        error="",
        last_request_user=User(name="shifter"),
        timestamp_ns=TS,
    )
    enc = core_kafka.encode(record)
    assert (enc.topic, enc.key) == ("aliecs.run", b"e1")
    event = decode(enc.value)
    assert (event.timestamp, event.timestampNano) == (TS // 1_000_000, TS)
    run = event.runEvent
    assert (run.environmentId, run.runNumber, run.state, run.transition) == (
        "e1",
        7,
        "RUNNING",
        "STOP_ACTIVITY",
    )
    assert run.transitionStatus == events_pb2.STARTED
    assert run.lastRequestUser.name == "shifter"


def test_call_event_mapping() -> None:
    record = CallEvent(
        environment_id="e2",
        func="kafka.PublishEnterStateUpdate()",
        status=OpStatus.DONE_TIMEOUT,
        traits=CallTraits(
            trigger="enter_RUNNING+2", await_="enter_RUNNING", timeout="5s", critical=True
        ),
        role_path="readout.flp1",
        return_var="out",
        output="text",
        error="timed out",
        timestamp_ns=TS,
    )
    enc = core_kafka.encode(record)
    assert (enc.topic, enc.key) == ("aliecs.call", b"e2")
    call = decode(enc.value).callEvent
    assert (call.func, call.callStatus) == (
        "kafka.PublishEnterStateUpdate()",
        events_pb2.DONE_TIMEOUT,
    )
    assert getattr(call, "return") == "out"
    assert (call.output, call.error, call.environmentId, call.path) == (
        "text",
        "timed out",
        "e2",
        "readout.flp1",
    )
    t = call.traits
    assert (t.trigger, getattr(t, "await"), t.timeout, t.critical) == (
        "enter_RUNNING+2",
        "enter_RUNNING",
        "5s",
        True,
    )


def test_integrated_service_event_goes_to_the_service_topic() -> None:
    record = IntegratedServiceEvent(
        service="odc",
        environment_id="e3",
        operation_name="odc.Configure()",
        operation_status=OpStatus.ONGOING,
        name="readout",
        operation_step="step-1",
        operation_step_status=OpStatus.DONE_OK,
        error="",
        payload='{"a": 1}',
        timestamp_ns=TS,
    )
    enc = core_kafka.encode(record)
    assert (enc.topic, enc.key) == ("aliecs.integrated_service.odc", b"e3")
    ise = decode(enc.value).integratedServiceEvent
    assert (ise.name, ise.operationName, ise.operationStep, ise.payload, ise.environmentId) == (
        "readout",
        "odc.Configure()",
        "step-1",
        '{"a": 1}',
        "e3",
    )
    assert (ise.operationStatus, ise.operationStepStatus) == (
        events_pb2.ONGOING,
        events_pb2.DONE_OK,
    )
    new = core_kafka.encode(
        IntegratedServiceEvent(
            service="mysvc", environment_id="", operation_name="x", operation_status=OpStatus.NULL
        )
    )
    assert (new.topic, new.key) == ("aliecs.integrated_service.mysvc", None)


def test_bad_service_name_is_a_publish_error() -> None:
    plugin, recorder = plugin_with_recorder()
    with pytest.raises(PublishError, match="'DCS'"):
        plugin.on_integrated_service_event(
            event=IntegratedServiceEvent(
                service="DCS",
                environment_id="e",
                operation_name="x",
                operation_status=OpStatus.NULL,
            )
        )
    assert recorder.sent == []


def test_task_event_is_keyed_by_task_id() -> None:
    record = TaskEvent(
        name="readout",
        task_id="t-1",
        state="RUNNING",
        status="ACTIVE",
        environment_id="e4",
        hostname="flp1",
        class_name="readout-class",
        path="readout.flp1",
        traits=CallTraits(trigger="t", critical=True),
    )
    enc = core_kafka.encode(record)
    assert (enc.topic, enc.key) == ("aliecs.task", b"t-1")
    task = decode(enc.value).taskEvent
    assert (
        task.name,
        task.taskid,
        task.state,
        task.status,
        task.hostname,
        task.className,
        task.environmentId,
        task.path,
    ) == ("readout", "t-1", "RUNNING", "ACTIVE", "flp1", "readout-class", "e4", "readout.flp1")
    assert (task.traits.trigger, task.traits.critical) == ("t", True)
    no_traits = decode(
        core_kafka.encode(TaskEvent(name="n", task_id="", state="s", status="ACTIVE")).value
    ).taskEvent
    assert not no_traits.HasField("traits")
    assert core_kafka.encode(TaskEvent(name="n", task_id="", state="s", status="x")).key is None


def test_role_event_mapping() -> None:
    enc = core_kafka.encode(
        RoleEvent(
            name="flp1",
            status="ACTIVE",
            state="CONFIGURED",
            role_path="readout.flp1",
            environment_id="e5",
        )
    )
    assert (enc.topic, enc.key) == ("aliecs.role", b"e5")
    role = decode(enc.value).roleEvent
    assert (role.name, role.status, role.state, role.rolePath, role.environmentId) == (
        "flp1",
        "ACTIVE",
        "CONFIGURED",
        "readout.flp1",
        "e5",
    )


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        (CoreEventKind.CORE_START, "coreStartEvent"),
        (CoreEventKind.FRAMEWORK, "frameworkEvent"),
        (CoreEventKind.MESOS_HEARTBEAT, "mesosHeartbeatEvent"),
    ],
)
def test_core_events_have_no_key(kind: CoreEventKind, payload: str) -> None:
    enc = core_kafka.encode(
        CoreEvent(kind=kind, framework_id="fw", message="hello", timestamp_ns=TS)
    )
    assert (enc.topic, enc.key) == ("aliecs.core", None)
    event = decode(enc.value)
    assert event.WhichOneof("Payload") == payload
    assert event.timestampNano == TS
    if kind is CoreEventKind.FRAMEWORK:
        assert (event.frameworkEvent.frameworkId, event.frameworkEvent.message) == ("fw", "hello")
    if kind is CoreEventKind.CORE_START:
        assert event.coreStartEvent.frameworkId == "fw"


def test_unknown_record_is_refused_and_never_published() -> None:
    plugin, recorder = plugin_with_recorder()
    with pytest.raises(PublishError, match=r"StateChangeEvent.*not an event kind"):
        core_kafka.encode(
            StateChangeEvent(environment=ENV, state="RUNNING", transition="START_ACTIVITY")
        )
    with pytest.raises(PublishError, match="dict"):
        plugin.publish({"not": "a record"})
    assert recorder.sent == []


def test_hooks_publish_through_pluggy_with_the_topic_root() -> None:
    plugin, recorder = plugin_with_recorder(root="aliecs.t42")
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="core-kafka")
    names = {n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "aliecs_integration_spec")}
    assert names and all(callable(getattr(plugin, n, None)) for n in names)
    pm.hook.on_host_start(event=HostStartEvent(plugin_names=("core-kafka",), timestamp_ns=TS))
    pm.hook.on_call(
        event=CallEvent(
            environment_id="e",
            func="f()",
            status=OpStatus.STARTED,
            traits=CallTraits(trigger="before_DEPLOY"),
        )
    )
    pm.hook.on_role_event(
        event=RoleEvent(name="r", status="s", state="x", role_path="p", environment_id="")
    )
    topics = [t for t, _, _ in recorder.sent]
    assert topics == ["aliecs.t42.core", "aliecs.t42.call", "aliecs.t42.role"]
    start = decode(recorder.sent[0][1])
    assert start.WhichOneof("Payload") == "coreStartEvent" and start.timestampNano == TS
    assert [k for _, _, k in recorder.sent] == [None, b"e", None]
    assert pm.hook.register_call_functions() == [{}]


def test_producing_off_creates_nothing(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(kafka_endpoints=("b1:9092", "b2:9092"), enable_kafka=False)
    with caplog.at_level(logging.INFO):
        plugin = core_kafka.CoreKafkaPlugin(PluginContext("core-kafka", settings))
    assert plugin.publisher is None
    assert "producing is off" in caplog.text
    assert plugin.connection_state() is ConnectionState.IDLE
    assert plugin.endpoint() == "b1:9092,b2:9092"
    plugin.on_core_event(event=CoreEvent(kind=CoreEventKind.FRAMEWORK))
    assert plugin.metrics().snapshot().sent == 0
    plugin.on_host_stop(event=HostStopEvent(timeout_s=1))
    assert plugin.connection_state() is ConnectionState.SHUTDOWN
    no_endpoints = core_kafka.CoreKafkaPlugin(
        PluginContext("core-kafka", Settings(kafka_endpoints=()))
    )
    assert no_endpoints.publisher is None


def test_producing_on_uses_the_shared_publisher_and_closes_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    calls: list[tuple[Any, ...]] = []

    def fake_shared(servers: Any, config: ProducerConfig, *, name: str) -> Recorder:
        calls.append((tuple(servers), config, name))
        return recorder

    monkeypatch.setattr(core_kafka, "shared_publisher", fake_shared)
    producer = ProducerConfig(topic_root="r")
    settings = Settings(kafka_endpoints=("b:1",), producer=producer)
    plugin = core_kafka.CoreKafkaPlugin(PluginContext("core-kafka", settings))
    assert calls == [(("b:1",), producer, "core-kafka")]
    assert recorder.prepared == [
        TopicNames("r").core,
        "r.environment",
        "r.task",
        "r.role",
        "r.call",
        "r.run",
    ]
    assert plugin.connection_state() is ConnectionState.READY
    assert plugin.metrics() is recorder.metrics
    with caplog.at_level(logging.INFO):
        plugin.on_host_stop(event=HostStopEvent(timeout_s=2.5))
    assert recorder.closed_with == pytest.approx(2.5, abs=0.5)  # what is left of 2.5 s
    assert "7 delivered, 1 failed, 2 dropped, 3 undelivered" in caplog.text
    assert plugin.connection_state() is ConnectionState.SHUTDOWN
    plugin.on_core_event(event=CoreEvent(kind=CoreEventKind.FRAMEWORK))
    assert recorder.sent == []  # nothing after stop


def _canonical(record: TransitionStepEvent) -> bytes:
    """What a straightforward encoder writes for ``record``."""
    env = record.environment
    p = events_pb2.Ev_EnvironmentEvent(
        environmentId=env.id, state=env.state, runNumber=env.run_number or 0,
        error=record.error, message=record.message, transition=record.transition,
        transitionStep=record.step, transitionStatus=cast(Any, int(record.status)),
        vars=dict(env.variables) if record.include_vars else {})
    if env.last_request_user is not None:
        user = env.last_request_user
        p.lastRequestUser.name = user.name
        if user.external_id is not None:
            p.lastRequestUser.externalId = user.external_id
        if user.id is not None:
            p.lastRequestUser.id = user.id
    if env.workflow is not None:
        w = env.workflow
        p.workflowTemplateInfo.name, p.workflowTemplateInfo.description = w.name, w.description
        p.workflowTemplateInfo.path, p.workflowTemplateInfo.public = w.path, w.public
    return events_pb2.Event(timestamp=record.timestamp_ns // 1_000_000,
                            timestampNano=record.timestamp_ns,
                            environmentEvent=p).SerializeToString(deterministic=True)


@pytest.mark.parametrize("include_vars", [False, True])
@pytest.mark.parametrize("run_number", [None, 1, 300, 2**32 - 1])
@pytest.mark.parametrize("error", ["", "boom", "é" * 200])
@pytest.mark.parametrize("env", [ENV, EnvironmentSnapshot(id="", state="PENDING"),
                                 attrs.evolve(ENV, id="x" * 300, last_request_user=None)])
def test_environment_encoding_is_the_canonical_message(
    include_vars: bool, run_number: int | None, error: str, env: EnvironmentSnapshot
) -> None:
    """Each field once, exactly the bytes a serializer writes (protobufjs keeps only the last
    occurrence of a repeated embedded message, so a partial encoding appended twice loses
    fields), equal to a parse and deterministic re-serialization of themselves."""
    env = attrs.evolve(env, run_number=run_number)
    record = TransitionStepEvent(
        environment=env, transition="DEPLOY", step="after_DEPLOY" if error else "",
        status=OpStatus.DONE_ERROR if error else OpStatus.ONGOING, finished=True,
        message="done", error=error, timestamp_ns=TS, include_vars=include_vars)
    for _ in range(2):  # cache miss, then hit
        value = core_kafka.encode(record).value
        assert value == _canonical(record)
        assert decode(value).SerializeToString(deterministic=True) == value


def test_a_changed_snapshot_is_never_served_from_the_cache() -> None:
    def event(variables: dict[str, str], state: str) -> events_pb2.Ev_EnvironmentEvent:
        env = EnvironmentSnapshot(id="same", state=state, variables=variables)
        return decode(
            core_kafka.encode(
                TransitionStepEvent(
                    environment=env,
                    transition="T",
                    step="s",
                    status=OpStatus.ONGOING,
                    finished=False,
                    message="m",
                    include_vars=state.endswith("0"),
                )
            ).value
        ).environmentEvent

    for i in range(50):  # new snapshot objects, possibly at recycled addresses
        got = event({"n": str(i)}, f"S{i}")
        assert got.state == f"S{i}"
        assert dict(got.vars) == ({"n": str(i)} if i % 10 == 0 else {})


def test_core_start_carries_the_framework_id() -> None:
    enc = core_kafka.encode(HostStartEvent(plugin_names=("core-kafka",), timestamp_ns=TS,
                                           framework_id="0b7e-instance"))
    event = decode(enc.value)
    assert (enc.topic, enc.key) == ("aliecs.core", None)
    assert event.coreStartEvent.frameworkId == "0b7e-instance"


@pytest.mark.parametrize("record", [
    CallEvent("env", "trg.RunStart()", OpStatus.DONE_OK,
              CallTraits("after_START_ACTIVITY+10", "after_START_ACTIVITY+10", "10s", True),
              "readout-dataflow.trg.start", "ret", "out" * 60, "", TS),
    CallEvent("", "p.F()", OpStatus.STARTED, CallTraits(""), timestamp_ns=TS),
    RoleEvent("readout", "ACTIVE", "", "rd.readout", "env", TS),
    RoleEvent("", "", "", "", "", TS),
    TaskEvent("c/tasks/readout@master#t1", "t1", "RUNNING", "ACTIVE", "env", "host", "c", "rd",
              CallTraits("", "", "", True), TS),
    TaskEvent("n", "t2", "DONE", "INACTIVE", timestamp_ns=TS),
])
def test_cached_payloads_are_the_canonical_message(record: Any) -> None:
    """Call, role and task events reuse their serialized payload: still exactly the bytes a
    straightforward encoder writes, with this record's own timestamp."""
    for ts in (TS, TS + 1_234_567):  # a cache miss, then a hit at another instant
        record = attrs.evolve(record, timestamp_ns=ts)
        event = events_pb2.Event(timestamp=ts // 1_000_000, timestampNano=ts)
        field = {CallEvent: "callEvent", RoleEvent: "roleEvent", TaskEvent: "taskEvent"}[
            type(record)]
        core_kafka._ENCODERS[type(record)](record, event, TopicNames())
        value = core_kafka.encode(record).value
        assert value == event.SerializeToString(deterministic=True)
        assert getattr(decode(value), field) == getattr(event, field)
        assert decode(value).HasField(field)  # an all-empty payload is still present


@pytest.mark.parametrize("timestamp_ns", [
    0, 1, 999_999, 1_000_000, 2**28 - 1, 2**28, 2**28 + 1, 2**35, TS, TS + 999_999,
    2**62, 2**63 - 1, -1, -TS, -(2**63),
])
def test_envelope_timestamps_are_those_a_serializer_writes(timestamp_ns: int) -> None:
    """The envelope's fields 1-2, written without a protobuf message in the usual range (and by
    one outside it), are exactly the serializer's bytes, cache miss and hit alike."""
    expected = events_pb2.Event(timestamp=timestamp_ns // 1_000_000,
                                timestampNano=timestamp_ns).SerializeToString()
    for _ in range(2):
        assert core_kafka._envelope_head(timestamp_ns) == expected


def test_envelope_timestamps_in_sequence() -> None:
    """Consecutive moments crossing ms and 2**28 ns boundaries (the cached parts change)."""
    start = (TS >> 28 << 28) - 3_000_000
    for timestamp_ns in range(start, start + 6_000_000, 9_973):
        assert core_kafka._envelope_head(timestamp_ns) == events_pb2.Event(
            timestamp=timestamp_ns // 1_000_000, timestampNano=timestamp_ns
        ).SerializeToString()


def test_every_message_carries_the_event_type_an_event_id_and_the_instance() -> None:
    settings = Settings(enable_kafka=False)
    plugin = core_kafka.CoreKafkaPlugin(PluginContext("core-kafka", settings, "instance-3"))
    recorder = Recorder()
    plugin.publisher = recorder
    seen: list[tuple[str, bytes, bytes | None]] = []
    plugin.add_event_listener(lambda t, k, v: seen.append((t, v, k)))
    for i in range(3):
        plugin.publish(IntegratedServiceEvent(service="dcs", environment_id=f"e{i}",
                                              operation_name="x", operation_status=OpStatus.NULL,
                                              timestamp_ns=TS))
    plugin.publish(CoreEvent(kind=CoreEventKind.FRAMEWORK, message="ok", timestamp_ns=TS))
    ids = set()
    for topic, headers in recorder.headers:
        assert topic.startswith("aliecs.") and headers is not None
        assert list(dict(headers)) == ["content-type", "event-id", "source-instance-id"]
        found = dict(headers)
        assert found["content-type"] == b"application/x-protobuf; messageType=events.Event"
        assert found["source-instance-id"] == b"instance-3"
        ids.add(found["event-id"])
    assert len(ids) == len(recorder.sent) == 4
    assert seen == recorder.sent  # listeners get the same key and value


def test_reconfigure_switches_the_publisher_only_when_producing_settings_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[Recorder] = []

    def fake_shared(servers: Any, config: ProducerConfig, *, name: str) -> Recorder:
        made.append(Recorder())
        return made[-1]

    monkeypatch.setattr(core_kafka, "shared_publisher", fake_shared)
    start = Settings(kafka_endpoints=("b:1",), producer=ProducerConfig(topic_root="r"))
    plugin = core_kafka.CoreKafkaPlugin(PluginContext("core-kafka", start))
    heard: list[str] = []
    plugin.add_event_listener(lambda topic, key, value: heard.append(topic))
    event = CoreEvent(kind=CoreEventKind.MESOS_HEARTBEAT)

    plugin.on_core_event(event=event)
    plugin.reconfigure(attrs.evolve(start, runtime_vars={"x": "1"}))  # not a producing change
    assert len(made) == 1 and plugin.settings.runtime_vars == {"x": "1"}

    moved = attrs.evolve(start, kafka_endpoints=("c:2",))
    plugin.reconfigure(moved)
    assert len(made) == 2 and made[0].closed_with is not None and made[1].prepared
    plugin.on_core_event(event=event)
    assert (len(made[0].sent), len(made[1].sent)) == (1, 1)

    plugin.reconfigure(attrs.evolve(moved, enable_kafka=False))
    assert plugin.publisher is None and made[1].closed_with is not None
    assert plugin.connection_state() is ConnectionState.IDLE
    plugin.on_core_event(event=event)  # producing off: encoded for listeners, not published
    assert (len(made[0].sent), len(made[1].sent), len(heard)) == (1, 1, 3)
    # both closed publishers' reports (Recorder: 7 delivered, 1 failed, 2 dropped, 3 left)
    assert plugin.delivery_report() == DeliveryReport(14, 2, 4, 6)
