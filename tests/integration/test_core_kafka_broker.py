"""core-kafka against the real single broker (auto topic creation off).

A scripted lifecycle of two environments driven in parallel through the plugin's hook
methods must produce exactly the expected sequence per key on each topic; the first message to
a topic that did not exist is delivered; secrets never reach the log; and a sustained
10-second produce reports its events/s (printed, not asserted).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from aliecs_integration_plugins import core_kafka
from confluent_kafka import Consumer, Producer

from aliecs_integration.pb import events_pb2
from aliecs_integration.records import (
    CallEvent,
    CallTraits,
    ConnectionState,
    CoreEvent,
    CoreEventKind,
    EnvironmentSnapshot,
    HostStartEvent,
    HostStopEvent,
    IntegratedServiceEvent,
    OpStatus,
    RoleEvent,
    RunEvent,
    TaskEvent,
    TransitionStepEvent,
    User,
)
from tests.kafka_helpers import core_kafka_plugin, read_topics


def summary(event: events_pb2.Event) -> tuple[Any, ...]:
    """The fields that identify one event of the script."""
    kind = event.WhichOneof("Payload")
    p = getattr(event, kind)
    if kind == "environmentEvent":
        return (
            kind,
            p.transition,
            p.transitionStep,
            p.state,
            p.transitionStatus,
            p.message,
            p.runNumber,
        )
    if kind == "runEvent":
        return (kind, p.transition, p.transitionStatus, p.runNumber)
    if kind == "callEvent":
        return (kind, p.func, p.callStatus, p.error)
    if kind == "integratedServiceEvent":
        return (kind, p.operationName, p.operationStatus)
    if kind == "taskEvent":
        return (kind, p.taskid, p.state)
    if kind == "roleEvent":
        return (kind, p.rolePath, p.state)
    return (kind,)


class Script:
    """Drives one environment through a lifecycle via the plugin's hooks; records what each
    topic must then contain, per key, in order."""

    def __init__(
        self,
        plugin: Any,
        env_id: str,
        run_number: int,
        expected: dict[tuple[str, bytes | None], list[tuple[Any, ...]]],
    ) -> None:
        self.plugin, self.env_id, self.run_number = plugin, env_id, run_number
        self.expected, self.lock = expected, threading.Lock()
        self.state, self.run = "PENDING", 0

    def emit(self, hook: str, record: Any) -> None:
        getattr(self.plugin, hook)(event=record)
        enc = core_kafka.encode(record, self.plugin.topics)
        with self.lock:
            self.expected[(enc.topic, enc.key)].append(
                summary(events_pb2.Event.FromString(enc.value))
            )

    def snapshot(self) -> EnvironmentSnapshot:
        return EnvironmentSnapshot(
            id=self.env_id,
            state=self.state,
            run_number=self.run or None,
            variables={"kafka_enabled": "true"},
            last_request_user=User(name="shifter"),
        )

    def step(self, transition: str, step: str, error: str = "") -> None:
        for finished in (False, True):
            status = OpStatus.DONE_ERROR if finished and error else OpStatus.ONGOING
            message = "transition step finished" if finished else "transition step starting"
            self.emit(
                "on_env_transition_step",
                TransitionStepEvent(
                    environment=self.snapshot(),
                    transition=transition,
                    step=step,
                    status=status,
                    finished=finished,
                    message=message,
                    error=error if finished else "",
                ),
            )

    def call(self, func: str, trigger: str, error: str = "") -> None:
        traits = CallTraits(trigger=trigger, timeout="5s", critical=False)
        self.emit(
            "on_call",
            CallEvent(
                environment_id=self.env_id, func=func, status=OpStatus.STARTED, traits=traits
            ),
        )
        self.emit(
            "on_call",
            CallEvent(
                environment_id=self.env_id,
                func=func,
                traits=traits,
                status=OpStatus.DONE_ERROR if error else OpStatus.DONE_OK,
                error=error,
            ),
        )

    def transition(
        self,
        name: str,
        target: str,
        *,
        error: str = "",
        extra: Callable[[str], None] = lambda step: None,
    ) -> None:
        for step in (f"before_{name}", f"leave_{self.state}", f"enter_{target}", f"after_{name}"):
            if step.startswith("enter_"):
                self.state = target
            extra(step)
            self.step(name, step, error if step == f"after_{name}" else "")

    def lifecycle(self) -> None:
        for step in ("before_CREATE", "CREATE"):
            self.step("CREATE", step)
        self.state = "STANDBY"

        def deploy(step: str) -> None:
            if step == "enter_DEPLOYED":
                for i in (1, 2):
                    self.emit(
                        "on_task_event",
                        TaskEvent(
                            name="readout",
                            task_id=f"{self.env_id}-task{i}",
                            state="CONFIGURED",
                            status="ACTIVE",
                            environment_id=self.env_id,
                            hostname=f"flp{i}",
                        ),
                    )
                self.emit(
                    "on_role_event",
                    RoleEvent(
                        name="readout",
                        status="ACTIVE",
                        state="DEPLOYED",
                        role_path="readout",
                        environment_id=self.env_id,
                    ),
                )

        def configure(step: str) -> None:
            if step == "before_CONFIGURE":
                for status in (OpStatus.STARTED, OpStatus.DONE_OK):
                    self.emit(
                        "on_integrated_service_event",
                        IntegratedServiceEvent(
                            service="odc",
                            environment_id=self.env_id,
                            operation_name="odc.Configure()",
                            operation_status=status,
                        ),
                    )

        def start(step: str) -> None:
            if step == "before_START_ACTIVITY":
                self.run = self.run_number
                self.emit(
                    "on_run_sor_eor",
                    RunEvent(self.env_id, self.run, self.state, "START_ACTIVITY", OpStatus.STARTED),
                )
            if step == "after_START_ACTIVITY":
                self.call("kafka.PublishStartActivityUpdate()", step)
                self.emit(
                    "on_run_sor_eor",
                    RunEvent(self.env_id, self.run, self.state, "START_ACTIVITY", OpStatus.DONE_OK),
                )

        def stop(step: str) -> None:
            if step in ("before_STOP_ACTIVITY", "after_STOP_ACTIVITY"):
                status = OpStatus.STARTED if step.startswith("before") else OpStatus.DONE_OK
                self.emit(
                    "on_run_sor_eor",
                    RunEvent(self.env_id, self.run, self.state, "STOP_ACTIVITY", status),
                )
            if step == "after_STOP_ACTIVITY":
                self.run = 0

        def fail(step: str) -> None:
            if step == "after_GO_ERROR":
                self.call("dcs.EndOfRun()", step, error="DCS unreachable")

        self.transition("DEPLOY", "DEPLOYED", extra=deploy)
        self.transition("CONFIGURE", "CONFIGURED", extra=configure)
        self.transition("START_ACTIVITY", "RUNNING", extra=start)
        self.transition("STOP_ACTIVITY", "CONFIGURED", extra=stop)
        self.transition("GO_ERROR", "ERROR", error="a critical call failed", extra=fail)
        self.transition("RECOVER", "DEPLOYED")
        for step in ("before_DESTROY", f"leave_{self.state}", "DESTROY", "after_DESTROY"):
            self.step("DESTROY", step)


def test_scripted_lifecycle_of_two_environments(
    kafka_bootstrap: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = core_kafka_plugin(kafka_bootstrap, topic_prefix)
    expected: dict[tuple[str, bytes | None], list[tuple[Any, ...]]] = defaultdict(list)
    scripts = [Script(plugin, env, run, expected) for env, run in (("envA", 101), ("envB", 102))]
    scripts[0].emit("on_host_start", HostStartEvent(plugin_names=("core-kafka",)))
    threads = [threading.Thread(target=s.lifecycle) for s in scripts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    scripts[0].emit(
        "on_integrated_service_event",
        IntegratedServiceEvent(
            service="newsvc",
            environment_id="envA",
            operation_name="newsvc.Hello()",
            operation_status=OpStatus.DONE_OK,
        ),
    )
    scripts[1].emit("on_core_event", CoreEvent(kind=CoreEventKind.FRAMEWORK, message="bye"))
    total = sum(len(v) for v in expected.values())
    with caplog.at_level(logging.INFO):
        plugin.on_host_stop(event=HostStopEvent(timeout_s=30))
    assert f"{total} delivered, 0 failed, 0 dropped, 0 undelivered" in caplog.text
    assert plugin.connection_state() is ConnectionState.SHUTDOWN

    topics = sorted({topic for topic, _ in expected})
    t = plugin.topics
    assert set(topics) == {
        t.core,
        t.environment,
        t.task,
        t.role,
        t.call,
        t.run,
        t.integrated_service("odc"),
        t.integrated_service("newsvc"),
    }
    got = read_topics(kafka_bootstrap, topics, total, settle=2.0)
    received: dict[tuple[str, bytes | None], list[tuple[Any, ...]]] = defaultdict(list)
    for topic, messages in got.items():
        for msg in messages:
            event = events_pb2.Event.FromString(msg.value())
            assert event.timestampNano // 1_000_000 == event.timestamp
            received[(topic, msg.key())].append(summary(event))
    assert dict(received) == dict(expected)  # per key: same events, same order, no duplicate
    # the interleaving really happened on the shared topics
    envs = [m.key() for m in got[t.environment]]
    assert envs.count(b"envA") == envs.count(b"envB") > 0
    assert [summary(events_pb2.Event.FromString(m.value())) for m in got[t.core]] == [
        ("coreStartEvent",),
        ("frameworkEvent",),
    ]
    assert [m.key() for m in got[t.core]] == [None, None]


def test_first_message_to_a_topic_that_did_not_exist_is_delivered(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    plugin = core_kafka_plugin(kafka_bootstrap, topic_prefix, partitions=2)
    topic = plugin.topics.integrated_service("brandnew")
    admin_meta = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "probe"})
    assert topic not in admin_meta.list_topics(timeout=10).topics
    plugin.on_integrated_service_event(
        event=IntegratedServiceEvent(
            service="brandnew",
            environment_id="e1",
            operation_name="first()",
            operation_status=OpStatus.DONE_OK,
        )
    )
    plugin.on_host_stop(event=HostStopEvent(timeout_s=30))
    meta = admin_meta.list_topics(topic=topic, timeout=10).topics[topic]
    admin_meta.close()
    assert len(meta.partitions) == 2
    got = read_topics(kafka_bootstrap, [topic], 1, settle=1.0)
    assert [
        events_pb2.Event.FromString(m.value()).integratedServiceEvent.operationName
        for m in got[topic]
    ] == ["first()"]
    assert plugin.metrics().snapshot().topics[topic].sent == 1


def test_secrets_never_reach_the_log_with_the_real_client(
    kafka_bootstrap: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        plugin = core_kafka_plugin(
            kafka_bootstrap,
            topic_prefix,
            properties={"sasl.username": "aliecs", "sasl.password": "hunter2-live", "linger.ms": 1},
        )
        plugin.on_core_event(event=CoreEvent(kind=CoreEventKind.FRAMEWORK))
        plugin.on_host_stop(event=HostStopEvent(timeout_s=30))
    assert "sasl.password" in caplog.text
    assert "hunter2-live" not in caplog.text
    assert plugin.metrics().snapshot().sent == 1


@pytest.mark.slow
def test_sustained_throughput_is_reported(kafka_bootstrap: str, topic_prefix: str) -> None:
    plugin = core_kafka_plugin(
        kafka_bootstrap, topic_prefix, properties={"linger.ms": 5, "compression.type": "lz4"}
    )
    env = EnvironmentSnapshot(
        id="benchEnv",
        state="RUNNING",
        run_number=1,
        variables={f"v{i}": "x" * 10 for i in range(10)},
    )
    record = TransitionStepEvent(
        environment=env,
        transition="START_ACTIVITY",
        step="enter_RUNNING",
        status=OpStatus.ONGOING,
        finished=False,
        message="transition step starting",
    )
    plugin.on_env_transition_step(event=record)
    plugin.publisher.flush(30)
    count, started = 0, time.monotonic()
    while time.monotonic() - started < 10.0:
        for _ in range(1000):
            plugin.on_env_transition_step(event=record)
        count += 1000
    elapsed = time.monotonic() - started
    flush_started = time.monotonic()
    report = plugin.publisher.close(60)
    total = time.monotonic() - started
    flush_took = time.monotonic() - flush_started
    assert report.undelivered == 0 and report.failed == 0 and report.dropped == 0
    size = len(core_kafka.encode(record).value)

    raw = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "linger.ms": 5,
            "acks": "all",
            "compression.type": "lz4",
            "enable.idempotence": True,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    value = core_kafka.encode(record).value
    topic = plugin.topics.environment
    raw_count, raw_started = 0, time.monotonic()
    while time.monotonic() - raw_started < 10.0:
        for _ in range(1000):
            while True:
                try:
                    raw.produce(topic, value, b"benchEnv")
                    break
                except BufferError:  # queue full: wait for deliveries, then retry
                    raw.poll(0.01)
        raw.poll(0)
        raw_count += 1000
    raw_produced = time.monotonic() - raw_started
    assert raw.flush(60) == 0
    raw_total = time.monotonic() - raw_started
    print(
        f"\ncore-kafka sustained: {count} events of {size} B in {elapsed:.1f} s = "
        f"{count / elapsed:,.0f} events/s published; all acknowledged "
        f"{flush_took:.1f} s later: {report.delivered / total:,.0f} events/s end to end\n"
        f"raw confluent-kafka (same bytes, no delivery callback): "
        f"{raw_count / raw_produced:,.0f} msgs/s produced, "
        f"{raw_count / raw_total:,.0f} msgs/s end to end"
    )
