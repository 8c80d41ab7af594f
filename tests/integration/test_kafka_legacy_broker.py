"""The legacy kafka plugin against the real broker: two environments interleaved through a full
cycle (plus one with ``kafka_enabled`` false), driven step by step through the default
workflow's call table, then every legacy topic consumed and decoded."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aliecs_integration_plugins.kafka import KafkaPlugin
from aliecs_integration_plugins.kafka.active_runs import sort_runs

from aliecs_integration.engine import fsm
from aliecs_integration.engine.workflow import CallSpec, default_workflow
from aliecs_integration.pb import kafka_pb2
from aliecs_integration.publish.topics import TopicNames
from aliecs_integration.records import (
    CallContext,
    CallTraits,
    EnvironmentSnapshot,
    HostStartEvent,
    HostStopEvent,
    PluginContext,
)
from aliecs_integration.settings.core import Settings
from aliecs_integration.settings.producer import ProducerConfig
from tests.kafka_helpers import read_topics

WORKFLOW = default_workflow()


class Driver:
    """Runs the default workflow's kafka calls at each step, the way the manager orders them
    (negative weights, the step's own work, then weight >= 0), keeping the variables the
    manager would set (enter_state_time_ms, run_number) and the expected outcome."""

    def __init__(self, plugin: KafkaPlugin) -> None:
        self.plugin = plugin
        self.functions = plugin.register_call_functions()
        self.next_run = 100
        self.expected: dict[str, list[tuple[str, str, int | None]]] = {}
        self.expected_lists: list[list[str]] = [[]]  # the one published at host start
        self.running: list[Any] = []  # EnvInfo of running environments, in order of entry
        self.states: dict[str, str] = {}

    def create(self, env_id: str, detectors: list[str], enabled: bool = True) -> dict[str, str]:
        self.expected[env_id] = []
        self.states[env_id] = fsm.State.STANDBY
        return {
            "environment_id": env_id,
            "detectors": json.dumps(detectors),
            "run_type": "PHYSICS",
            "kafka_enabled": "true" if enabled else "false",
            "enter_state_time_ms": str(time.time_ns() // 1_000_000),
        }

    def transition(self, env: dict[str, str], name: str) -> None:
        env_id = env["environment_id"]
        to_state = fsm.next_state(env_id, name, self.states[env_id])
        for step in fsm.step_names(name, self.states[env_id], to_state):
            self._step(env, step, to_state)

    def destroy(self, env: dict[str, str]) -> None:
        for step in fsm.destroy_step_names(self.states[env["environment_id"]]):
            self._step(env, step, None)

    def _step(self, env: dict[str, str], step: str, to_state: str | None) -> None:
        negative, rest = WORKFLOW.calls_at(step)
        for call in negative:
            self._call(env, call, step)
        if step.startswith("enter_") and to_state is not None:
            self.states[env["environment_id"]] = to_state
            env["enter_state_time_ms"] = str(time.time_ns() // 1_000_000)
        elif step == "before_START_ACTIVITY":
            self.next_run += 1
            env["run_number"] = str(self.next_run)
        elif step == "after_STOP_ACTIVITY":
            env.pop("run_number")
        for call in rest:
            self._call(env, call, step)

    def _call(self, env: dict[str, str], call: CallSpec, step: str) -> None:
        if not call.is_enabled(env):
            return
        plugin_name, bare = call.qualified_name.split(".")
        assert plugin_name == "kafka"
        env_id = env["environment_id"]
        snap = EnvironmentSnapshot(id=env_id, state=self.states[env_id], variables=env)
        context = CallContext(
            environment=snap,
            func=call.func,
            trigger=step,
            args=call.args,
            traits=CallTraits(trigger=call.trigger),
        )
        time.sleep(0.003)  # notification timestamps (ms) strictly increase from call to call
        self.functions[bare](context)
        self._expect(env, bare, step)

    def _expect(self, env: dict[str, str], bare: str, step: str) -> None:
        env_id = env["environment_id"]
        run = int(env["run_number"]) if "run_number" in env else None
        if bare == "PublishEnterStateUpdate":
            state = "UNKNOWN" if step == fsm.DESTROY else step.removeprefix("enter_")
            self.expected[env_id].append(
                ("env_state." + state, state, run if state == "RUNNING" else None)
            )
            self.running = [r for r in self.running if r.environmentId != env_id]
            if state == "RUNNING":
                self.running.append(
                    kafka_pb2.EnvInfo(environmentId=env_id, detectors=json.loads(env["detectors"]))
                )
            self.expected_lists.append([r.environmentId for r in sort_runs(self.running)])
        elif bare == "PublishLeaveStateUpdate":
            state = step.removeprefix("leave_")
            self.expected[env_id].append(
                ("env_leave_state." + state, state, run if state == "RUNNING" else None)
            )
        else:
            topic, state = {
                "before_START_ACTIVITY": ("before_start_activity", "CONFIGURED"),
                "after_START_ACTIVITY": ("after_start_activity", "RUNNING"),
            }[step]
            self.expected[env_id].append((topic, state, run))


@pytest.fixture
def plugin(kafka_bootstrap: str, topic_prefix: str) -> Iterator[KafkaPlugin]:
    settings = Settings(
        kafka_endpoint=kafka_bootstrap,
        producer=ProducerConfig(topic_root=topic_prefix, replication_factor=1),
    )
    plugin = KafkaPlugin(PluginContext("kafka", settings))
    plugin.on_host_start(HostStartEvent(plugin_names=("kafka",)))
    try:
        yield plugin
    finally:
        plugin.on_host_stop(HostStopEvent(timeout_s=10))


def test_two_environments_interleaved_full_cycle(
    plugin: KafkaPlugin, kafka_bootstrap: str, topic_prefix: str
) -> None:
    d = Driver(plugin)
    a = d.create("ENVA", ["TPC", "TOF", "EMC"])
    b = d.create("ENVB", ["TPC", "ITS"])
    off = d.create("ENVOFF", ["MCH", "MID"], enabled=False)
    d.transition(a, "DEPLOY")
    d.transition(b, "DEPLOY")
    d.transition(off, "DEPLOY")
    d.transition(a, "CONFIGURE")
    d.transition(a, "START_ACTIVITY")
    d.transition(b, "CONFIGURE")
    d.transition(off, "CONFIGURE")
    d.transition(b, "START_ACTIVITY")
    d.transition(off, "START_ACTIVITY")
    d.transition(a, "STOP_ACTIVITY")
    d.transition(b, "STOP_ACTIVITY")
    d.transition(a, "EXIT")
    d.transition(b, "EXIT")
    d.destroy(a)
    d.destroy(b)
    d.destroy(off)
    plugin.on_host_stop(HostStopEvent(timeout_s=10))

    names = TopicNames(topic_prefix)
    n_expected = sum(len(v) for v in d.expected.values()) + len(d.expected_lists)
    received = [
        (topic, bytes(msg.value()), msg.key())
        for topic, msgs in read_topics(kafka_bootstrap, names.legacy_topics(), n_expected).items()
        for msg in msgs
    ]
    assert len(received) == n_expected
    assert all(key is None for _, _, key in received)

    notes: dict[str, list[tuple[int, str, kafka_pb2.NewStateNotification]]] = {}
    lists: list[kafka_pb2.ActiveRunsList] = []
    for topic, value, _ in received:
        short = topic.removeprefix(topic_prefix + ".")
        if short == "env_list.RUNNING":
            lists.append(kafka_pb2.ActiveRunsList.FromString(value))
            continue
        note = kafka_pb2.NewStateNotification.FromString(value)
        notes.setdefault(note.envInfo.environmentId, []).append((note.timestamp, short, note))

    assert "ENVOFF" not in notes  # kafka_enabled false: nothing published for it
    assert set(notes) == {"ENVA", "ENVB"}
    for env_id, items in notes.items():
        items.sort(key=lambda item: item[0])
        got = [
            (
                short,
                n.envInfo.state,
                n.envInfo.runNumber if n.envInfo.HasField("runNumber") else None,
            )
            for _, short, n in items
        ]
        assert got == d.expected[env_id], env_id
        for _, short, n in items:
            info = n.envInfo
            if short in (
                "env_state.RUNNING",
                "env_leave_state.RUNNING",
                "after_start_activity",
                "before_start_activity",
            ):
                assert info.HasField("runNumber") and info.HasField("runType"), short
                assert info.runType == "PHYSICS"
            else:
                assert not info.HasField("runNumber") and not info.HasField("runType"), short
            assert info.enterStateTimestamp > 0 and n.timestamp >= info.enterStateTimestamp

    # Start of Run and End of Run carry the same run; the EOR still says RUNNING.
    for env_id in ("ENVA", "ENVB"):
        by_topic = {short: n for _, short, n in notes[env_id]}
        sor, eor = by_topic["env_state.RUNNING"], by_topic["env_leave_state.RUNNING"]
        assert eor.envInfo.state == "RUNNING"
        assert sor.envInfo.runNumber == eor.envInfo.runNumber
        assert by_topic["before_start_activity"].envInfo.runNumber == sor.envInfo.runNumber

    # One list at start and one after every enter-state notification, each matching the set.
    assert [[r.environmentId for r in x.activeRuns] for x in lists] == d.expected_lists
    assert ["ENVB", "ENVA"] in d.expected_lists  # ITS run listed first while both ran
    for listing in lists:
        for run in listing.activeRuns:
            assert list(run.detectors) == sorted(run.detectors)
            assert run.state == "RUNNING" and run.HasField("runNumber")
